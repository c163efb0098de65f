// Many rstlab processes on one machine: cleanup removes only labs whose owner is gone, and
// labs run at once never take each other's evidence. Every check here looks only at the
// labs this test made (their owner records): other labs may be up on the machine.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ROOT, cliEnv, fixture, leftovers, ownerOf, rstlab, startCli, until } from '../helpers.js';

const runsDir = mkdtempSync(join(tmpdir(), 'rstlab-ownership-'));

/** The ids of the labs (netns) whose owner is `pid`. */
function labsOf(pid: number): string[] {
  let names: string[] = [];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return [];
  }
  const ids = names.map((n) => /^rstlab-(.+)-client$/.exec(n)?.[1]).filter((id): id is string => id !== undefined);
  return ids.filter((id) => ownerOf(id) === pid);
}

interface Record {
  slot: number;
  ports: { min: number; max: number };
  owner: { pid: number; kept: boolean };
}
const recordOf = (id: string): Record => JSON.parse(readFileSync(`/run/rstlab/labs/${id}.json`, 'utf8')) as Record;

describe('lab ownership and cleanup beside other runs (netns)', function () {
  this.timeout(60_000);
  after(() => rmSync(runsDir, { recursive: true, force: true }));

  it('cleanup beside a running scenario leaves its lab alone, says why, and the scenario passes', async () => {
    const run = startCli(['run', fixture('scenarios/sleep-4s.yaml'), '--runs-dir', runsDir]);
    const pid = run.child.pid!;
    await until(() => labsOf(pid).length === 1 && leftovers(new Set([pid])).tcpdumps.length === 4, 20_000, 'the lab and its captures');
    const [id] = labsOf(pid);
    const rec = recordOf(id!);
    expect(rec.owner).to.include({ pid, kept: false });

    const c = await rstlab('cleanup');
    expect(c.code, c.stderr).to.equal(0);
    expect(c.stdout).to.contain(`left ${id} (netns: rstlab-${id}-client, rstlab-${id}-firewall, rstlab-${id}-server): owner pid ${pid} is running`);
    expect(c.stdout).to.not.match(new RegExp(`removed .*${id}`));

    const r = await run.done;
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    expect(r.stdout).to.contain('PASS sleep-4s');
    expect(leftovers(new Set([pid]))).to.deep.equal({ namespaces: [], tcpdumps: [] });
    expect(existsSync(`/run/rstlab/labs/${id}.json`)).to.equal(false);
  });

  it('after kill -9, cleanup removes the lab, its tracing instance, its state file and its port slot', async () => {
    const run = startCli(['run', fixture('scenarios/long-sleep.yaml'), '--runs-dir', runsDir]);
    const pid = run.child.pid!;
    const mine = new Set([pid]);
    await until(() => labsOf(pid).length === 1 && leftovers(mine).tcpdumps.length === 4, 20_000, 'the lab and its captures');
    const [id] = labsOf(pid);
    const { slot } = recordOf(id!);
    const instance = `/sys/kernel/tracing/instances/rstlab-${id}`;
    await until(() => existsSync(instance), 5000, 'the tracing instance');
    const slotFile = `/run/rstlab/slots/${slot}`;
    expect(JSON.parse(readFileSync(slotFile, 'utf8'))).to.include({ lab: id });

    run.child.kill('SIGKILL');
    await run.done;
    expect(leftovers(mine).namespaces).to.have.length(3);

    const c = await rstlab('cleanup');
    expect(c.code, c.stderr).to.equal(0);
    for (const h of ['client', 'firewall', 'server']) expect(c.stdout).to.contain(`removed namespace rstlab-${id}-${h}`);
    expect(c.stdout).to.contain(`removed tracing instance rstlab-${id}`);
    expect(c.stdout).to.contain(`removed state file /run/rstlab/labs/${id}.json`);
    expect(existsSync(instance)).to.equal(false);
    expect(existsSync(`/run/rstlab/labs/${id}.json`)).to.equal(false);
    // the slot is free, or already another lab's
    expect(existsSync(slotFile) && (JSON.parse(readFileSync(slotFile, 'utf8')) as { lab: string }).lab === id).to.equal(false);
    await until(() => leftovers(mine).tcpdumps.length === 0, 5000, 'tcpdump to end');
    expect(leftovers(mine)).to.deep.equal({ namespaces: [], tcpdumps: [] });
  });

  it('cleanup --force removes a lab whose owner is running (in a mount namespace of its own)', async () => {
    // --force removes every rstlab lab of the machine, other people's too: this test runs it
    // where only its own lab can be seen. A private mount namespace with its own /run (so its
    // own /run/netns and /run/rstlab; and no Docker socket) and an empty tracefs mount point.
    const script = [
      'set -u',
      'mount -t tmpfs rstlab-test /run',
      'mount -t tmpfs rstlab-test /sys/kernel/tracing',
      `"${process.execPath}" "${CLI}" run "${fixture('scenarios/long-sleep.yaml')}" --no-trace --runs-dir "${runsDir}" >/dev/null 2>&1 & RUN=$!`,
      'for i in $(seq 200); do [ "$(ls /run/netns 2>/dev/null | grep -c rstlab-)" = 3 ] && break; sleep 0.1; done',
      'echo "== before: $(ls /run/netns | tr "\\n" " ")"',
      `echo "== cleanup"; "${process.execPath}" "${CLI}" cleanup`,
      `echo "== force"; "${process.execPath}" "${CLI}" cleanup --force`,
      'echo "== after: $(ls /run/netns 2>/dev/null | tr "\\n" " ")|$(find /run/rstlab -type f | tr "\\n" " ")"',
      // the run finds its lab gone (exit 3), or stops at SIGINT (130)
      'kill -INT $RUN 2>/dev/null; wait $RUN; echo "== run exit $?"',
    ].join('\n');
    const out = execFileSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { cwd: ROOT, env: cliEnv(), encoding: 'utf8', timeout: 50_000 });
    const part = (name: string) => out.split('== ').find((p) => p.startsWith(name)) ?? '';
    const ids = [...part('before').matchAll(/rstlab-(\w+)-client/g)].map((m) => m[1]);
    expect(ids, out).to.have.length(1);
    const id = ids[0]!;
    expect(part('cleanup'), out).to.match(new RegExp(`left ${id} \\(netns: .*\\): owner pid \\d+ is running`));
    for (const h of ['client', 'firewall', 'server']) expect(part('force'), out).to.contain(`removed namespace rstlab-${id}-${h}`);
    expect(part('force'), out).to.contain(`removed state file /run/rstlab/labs/${id}.json`);
    expect(part('after'), out).to.match(/^after: \s*\|\s*$/m);
    expect(part('run exit'), out).to.match(/^run exit (3|130)\s*$/);
  });

  it('four syn-conflict labs at once, 20 rounds: every lab gets its own port and the right kernel reason', async function () {
    this.timeout(300_000);
    const started = Date.now();
    const rounds = Number(process.env.RSTLAB_PARALLEL_ROUNDS ?? 20);
    for (let round = 0; round < rounds; round++) {
      const results = await Promise.all([0, 1, 2, 3].map(() => rstlab('run', 'syn-conflict', '--json', '--runs-dir', runsDir)));
      const ports = new Set<number>();
      for (const r of results) {
        expect(r.code, `round ${round}: ${r.stdout.slice(0, 2000)}${r.stderr}`).to.equal(0);
        const report = JSON.parse(r.stdout) as {
          conns: { c1: { initiator: { localPort: number } } };
          rsts: { reason?: string; sport: number }[];
          kernelResets: { sport: number; dport: number; reason: string }[];
        };
        const port = report.conns.c1.initiator.localPort;
        ports.add(port);
        expect(report.rsts.map((s) => s.reason), `round ${round}`).to.deep.equal(['TCP_INVALID_ACK_SEQUENCE']);
        // every kernel event the run kept is of its own lab: its client port (syn-conflict has
        // no listener RST, so a listener's event here would be another lab's, e.g. of a run
        // --all beside this test)
        for (const k of report.kernelResets) expect([k.sport, k.dport], `round ${round}`).to.include(port);
      }
      expect(ports.size, `round ${round}: the labs' pinned ports`).to.equal(4);
    }
    console.log(`      ${rounds} rounds of 4 labs in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect(leftovers()).to.deep.equal({ namespaces: [], tcpdumps: [] });
  });

  it('four accept-queue-overflow labs at once, 5 rounds: each keeps only its own listener\'s RSTs', async function () {
    // A listener's RST names only the listener ([::]:8080 → [::]:0), the same in every lab:
    // it is the lab's when its socket (skaddr) is one of the lab's listening sockets.
    this.timeout(300_000);
    for (let round = 0; round < 5; round++) {
      const results = await Promise.all([0, 1, 2, 3].map(() => rstlab('run', 'accept-queue-overflow', '--json', '--runs-dir', runsDir)));
      for (const r of results) {
        expect(r.code, `round ${round}: ${r.stdout.slice(0, 2000)}${r.stderr}`).to.equal(0);
        const report = JSON.parse(r.stdout) as { rsts: { reason?: string }[]; kernelResets: { socket?: string; dport: number }[] };
        // one kernel event per RST of its own, all from its one listening socket: none of
        // the other three labs' (their listeners send the same [::]:8080 → [::]:0 events at
        // the same time)
        expect(report.kernelResets.length, `round ${round}: ${JSON.stringify(report.kernelResets)}`).to.equal(report.rsts.length);
        expect(new Set(report.kernelResets.map((k) => k.socket)).size, `round ${round}: the lab's listener`).to.equal(1);
      }
    }
    expect(leftovers()).to.deep.equal({ namespaces: [], tcpdumps: [] });
  });
});
