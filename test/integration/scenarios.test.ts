// Every scenario in scenarios/, on each backend: the cause passes, every control passes,
// and every control judged by the cause's expectations fails (exit 1) — the proof that
// the scenario can fail, that its expectations see the cause and not merely a run.
import { expect } from 'chai';
import { readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { leftovers, ROOT, rstlab } from '../helpers.js';
import { parse } from 'yaml';
import { readFileSync } from 'node:fs';

const scenarios = readdirSync(`${ROOT}scenarios`).filter((f) => f.endsWith('.yaml')).sort();

function variantsOf(file: string): string[] {
  const doc = parse(readFileSync(`${ROOT}scenarios/${file}`, 'utf8')) as { variants?: Record<string, unknown> };
  return Object.keys(doc.variants ?? {});
}

function dockerReachable(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

for (const backend of ['netns', 'docker'] as const) {
  describe(`every scenario on ${backend}`, function () {
    this.timeout(180_000);

    before(function () {
      if (backend === 'docker' && !dockerReachable()) {
        // CI has Docker: there, a missing daemon is a failure, not a skip.
        if (process.env.CI) throw new Error('Docker is not reachable, and CI must run the Docker tests');
        this.skip();
      }
    });

    it('there are scenarios, each with a control', () => {
      expect(scenarios.length).to.be.at.least(1);
      for (const f of scenarios) expect(variantsOf(f), f).to.include('control');
    });

    for (const file of scenarios) {
      const name = file.replace(/\.yaml$/, '');
      it(`${name}: the cause passes`, async () => {
        const r = await rstlab('run', name, '--backend', backend, '--json');
        const report = JSON.parse(r.stdout || '{}');
        expect(r.code, `${r.stderr}\n${JSON.stringify(report.results, null, 1)}`).to.equal(0);
        expect(report.passed).to.equal(true);
      });
      for (const variant of variantsOf(file)) {
        it(`${name}: ${variant} passes`, async () => {
          const r = await rstlab('run', name, '--variant', variant, '--backend', backend, '--json');
          const report = JSON.parse(r.stdout || '{}');
          expect(r.code, `${r.stderr}\n${JSON.stringify(report.results, null, 1)}`).to.equal(0);
        });
        it(`${name}: ${variant} judged by the cause's expectations fails`, async () => {
          const r = await rstlab('run', name, '--variant', variant, '--expect-of', 'cause', '--backend', backend, '--json');
          expect(r.code, r.stderr).to.equal(1);
          const report = JSON.parse(r.stdout);
          expect(report.results.some((x: { passed: boolean }) => !x.passed)).to.equal(true);
        });
      }
    }

    after(() => {
      expect(leftovers()).to.deep.equal({ namespaces: [], tcpdumps: [] });
    });
  });
}
