// Every scenario in scenarios/, on each backend: the cause passes, every control passes,
// and every control judged by the cause's expectations fails (exit 1) — the proof that
// the scenario can fail, that its expectations see the cause and not merely a run.
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { decodeCaptureFile } from '../../src/capture/pcap.js';
import { mergeAcrossPoints } from '../../src/verify/merge.js';
import { TOPOLOGY, flagString } from '../../src/vocabulary.js';
import { dockerLeftovers, dockerReachable, leftovers, ROOT, rstlab } from '../helpers.js';

const scenarios = readdirSync(`${ROOT}scenarios`).filter((f) => f.endsWith('.yaml')).sort();

function variantsOf(file: string): string[] {
  const doc = parse(readFileSync(`${ROOT}scenarios/${file}`, 'utf8')) as { variants?: Record<string, unknown> };
  return Object.keys(doc.variants ?? {});
}

const POINTS = ['client', 'firewall-a', 'firewall-b', 'server'] as const;
const HOST_OF: Record<string, string> = {
  [TOPOLOGY.client.address]: 'client', [TOPOLOGY.server.address]: 'server',
  [TOPOLOGY.firewall.addresses.eth0]: 'firewall', [TOPOLOGY.firewall.addresses.eth1]: 'firewall',
};

/** A run's segments as a backend-neutral sequence: who to whom, flags, length, and where
 * each was seen — no addresses of interfaces, MACs, ports, sequence numbers or times. */
async function packetSequence(runDir: string): Promise<string[]> {
  const packets = Object.fromEntries(await Promise.all(POINTS.map(async (p) => [p, await decodeCaptureFile(join(runDir, `${p}.pcap`))])));
  const events = mergeAcrossPoints(packets, POINTS);
  // A bare ACK that a scenario's firewall drops on purpose (time-wait-assassination holds
  // back the server's ACK of the client's FIN) is sent or not as the kernel's delayed-ACK
  // timing falls, on either backend: it is not part of the sequence compared.
  const droppedBareAck = (e: (typeof events)[number]) =>
    flagString(e.first.packet.flags) === '.' && e.first.packet.payloadLength === 0 && !(e.seen.has('client') && e.seen.has('server'));
  return events.filter((e) => !droppedBareAck(e)).map((e) => {
    const p = e.first.packet;
    const seen = POINTS.filter((pt) => e.seen.has(pt)).join(',');
    return `${HOST_OF[p.src]}>${HOST_OF[p.dst]} ${flagString(p.flags)} len ${p.payloadLength} at ${seen}`;
  });
}

/** The run folder of each cause run, by backend and scenario, for the comparison. */
const causeRuns = new Map<string, string>();

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
        causeRuns.set(`${backend} ${name}`, report.dir);
      });
      if (backend === 'docker') {
        it(`${name}: the same packet sequence as on netns`, async () => {
          for (const b of ['netns', 'docker']) {
            if (causeRuns.has(`${b} ${name}`)) continue;
            const r = await rstlab('run', name, '--backend', b, '--json');
            expect(r.code, r.stderr).to.equal(0);
            causeRuns.set(`${b} ${name}`, JSON.parse(r.stdout).dir);
          }
          const [netns, docker] = await Promise.all(['netns', 'docker'].map((b) => packetSequence(join(ROOT, causeRuns.get(`${b} ${name}`)!))));
          expect(docker).to.deep.equal(netns);
        });
      }
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

    after(function () {
      if (backend === 'docker' && !dockerReachable()) return;
      expect(leftovers()).to.deep.equal({ namespaces: [], tcpdumps: [] });
      if (backend === 'docker') expect(dockerLeftovers()).to.deep.equal({ containers: [], networks: [] });
    });
  });
}
