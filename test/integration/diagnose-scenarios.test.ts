// Every scenario's own captures, diagnosed: each scenario and variant runs once through the
// CLI (run --all, two labs at a time), then `rstlab diagnose` reads each capture point's
// pcap. A cause's captures must name the scenario's cause at every point where its RST was
// seen; a control's captures must have no RST (time-wait-assassination's control is the one
// whose RST arrives too: RFC 1337 protection keeps the TIME-WAIT entry, not the RST away).
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listScenarios } from '../../src/scenario/load.js';
import { planFor } from '../../src/scenario/plan.js';
import { ROOT, rstlab } from '../helpers.js';

interface Report {
  scenario: string;
  variant: string;
  passed: boolean;
}
/** Controls whose cause's RST still arrives by design. */
const CONTROL_WITH_RST = new Set(['time-wait-assassination']);
/** Causes the wire tells only on one side: past the firewall a duplicate address's RST looks
 * like a half-open reset (every frame carries the firewall's MAC there). There the cause
 * must still be among the candidates. */
const TOLD_ONLY_AT: Record<string, string[]> = { 'duplicate-address': ['firewall-b'] };

describe('rstlab diagnose on every scenario\'s own captures', function () {
  this.timeout(600_000);
  let dir: string;
  let runs: { report: Report; dir: string }[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rstlab-diagnose-runs-'));
    const r = await rstlab('run', '--all', '--jobs', '2', '--runs-dir', dir);
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    runs = readdirSync(dir).map((d) => ({ dir: join(dir, d), report: JSON.parse(readFileSync(join(dir, d, 'report.json'), 'utf8')) as Report }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs every scenario and variant', async () => {
    const scenarios = await listScenarios(join(ROOT, 'scenarios'));
    expect(runs.length).to.equal(scenarios.reduce((n, s) => n + s.variants.length, 0));
  });

  it('names each scenario\'s cause at every capture point that saw its RST, and finds no RST in a control without one', async () => {
    const scenarios = new Map((await listScenarios(join(ROOT, 'scenarios'))).map((s) => [s.scenario.name, s]));
    const problems: string[] = [];
    let diagnosed = 0;
    for (const { report, dir: runDir } of runs) {
      const s = scenarios.get(report.scenario);
      expect(s, report.scenario).to.not.equal(undefined);
      const first = planFor(s!, 'cause').expect.find((e) => 'rst' in e.expectation)?.expectation;
      const seenAt = first && 'rst' in first ? (first.rst.seenAt ?? []) : [];
      for (const point of ['client', 'firewall-a', 'firewall-b', 'server']) {
        const pcap = join(runDir, `${point}.pcap`);
        if (!existsSync(pcap)) continue;
        const r = await rstlab('diagnose', '--json', pcap);
        diagnosed++;
        if (r.code !== 0) {
          problems.push(`${report.scenario} ${report.variant} ${point}: exit ${r.code}: ${r.stderr}`);
          continue;
        }
        const rsts = (JSON.parse(r.stdout) as { files: { rsts: { cause: string; candidates: { cause: string }[] }[] }[] }).files[0]!.rsts;
        const only = TOLD_ONLY_AT[report.scenario];
        const causes = rsts.map((x) => (only && !only.includes(point) && x.candidates.some((c) => c.cause === report.scenario) ? report.scenario : x.cause));
        const where = `${report.scenario} ${report.variant} at ${point}: diagnosed [${causes.join(', ')}]`;
        if (report.variant === 'cause' || CONTROL_WITH_RST.has(report.scenario)) {
          if (seenAt.includes(point as never) && !causes.includes(report.scenario)) problems.push(`${where}, expected ${report.scenario}`);
          if (!seenAt.includes(point as never) && causes.length > 0 && !causes.includes(report.scenario)) problems.push(`${where}: a RST not named as the cause`);
        } else if (causes.length > 0) {
          problems.push(`${where}, expected no RST`);
        }
      }
    }
    expect(problems, problems.join('\n')).to.deep.equal([]);
    expect(diagnosed).to.be.greaterThan(80);
  });
});
