// A lab a class keeps, on each backend, through the real CLI: `lab up --scenario` sets the
// hosts up as the scenario does (its rules and sysctls, none of its steps), `lab exec` and
// `lab shell` reach the hosts' own tools, the lab survives `rstlab cleanup` and a concurrent
// `run --all`, `run NAME --lab ID` runs inside it and puts back what it changed, and
// `lab down` leaves nothing of it. The test looks only at its own labs.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEnv, CLI, dockerReachable, ROOT, rstlab, runDirOf, type CliResult } from '../helpers.js';

/** The CLI with text on its stdin (an interactive shell reads its commands from there). */
function rstlabWithInput(input: string, ...args: string[]): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: cliEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.end(input);
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

/** What of a lab exists on the machine: namespaces, containers, its owner record. */
function traces(id: string): string[] {
  const out: string[] = [];
  if (existsSync('/run/netns')) out.push(...readdirSync('/run/netns').filter((n) => n.includes(id)));
  if (existsSync(`/run/rstlab/labs/${id}.json`)) out.push(`record ${id}`);
  return out;
}

async function dockerContainers(id: string): Promise<string[]> {
  if (!dockerReachable()) return [];
  const { execFileSync } = await import('node:child_process');
  return execFileSync('docker', ['ps', '-a', '--filter', `label=rstlab.lab=${id}`, '--format', '{{.Names}}'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
}

/** The firewall's ruleset without counters, to compare before and after a run. */
async function rules(id: string): Promise<string> {
  const r = await rstlab('lab', 'exec', 'firewall', '--lab', id, '--', 'iptables-save');
  expect(r.code, r.stderr).to.equal(0);
  return r.stdout.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, '')).join('\n');
}

describe('kept labs: lab up, ls, exec, shell, run --lab, down', function () {
  this.timeout(300_000);
  const backends = dockerReachable() ? (['netns', 'docker'] as const) : (['netns'] as const);
  const labs: Partial<Record<(typeof backends)[number], string>> = {};
  const runsDir = mkdtempSync(join(tmpdir(), 'rstlab-kept-'));

  before(function () {
    // CI has Docker: there, a missing daemon is a failure, not a reduced test.
    if (process.env.CI && !dockerReachable()) throw new Error('Docker is not reachable, and CI must run the Docker tests');
  });

  after(async () => {
    for (const id of Object.values(labs)) if (id) await rstlab('lab', 'down', id);
    rmSync(runsDir, { recursive: true, force: true });
  });

  for (const backend of backends) {
    it(`${backend}: lab up --scenario idle-timeout sets up its rules and sysctls, and says how to get in`, async () => {
      const r = await rstlab('lab', 'up', '--scenario', 'idle-timeout', '--backend', backend);
      expect(r.code, r.stderr).to.equal(0);
      const id = /^kept lab (\S+) is up on (\S+)/.exec(r.stdout)?.[1];
      expect(id, r.stdout).to.be.a('string');
      labs[backend] = id!;
      expect(r.stdout).to.contain(`rstlab lab shell client --lab ${id}`);
      expect(r.stdout).to.contain(`rstlab run closed-port --lab ${id}`);
      expect(await rules(id!)).to.contain('--ctstate INVALID -j REJECT --reject-with tcp-reset');
      const sysctl = await rstlab('lab', 'exec', 'firewall', '--lab', id!, '--', 'sysctl', '-n', 'net.netfilter.nf_conntrack_tcp_timeout_established');
      expect(sysctl.stdout.trim()).to.equal('3');
      const ls = await rstlab('lab', 'ls');
      expect(ls.stdout).to.match(new RegExp(`^${id}\\s+${backend}\\s`, 'm'));
    });

    it(`${backend}: lab exec client -- ss -tan, and lab shell, reach the host's own tools`, async () => {
      const id = labs[backend]!;
      const ss = await rstlab('lab', 'exec', 'client', '--lab', id, '--', 'ss', '-tan');
      expect(ss.code, ss.stderr).to.equal(0);
      expect(ss.stdout).to.match(/^State\s+Recv-Q/);
      const failing = await rstlab('lab', 'exec', 'server', '--lab', id, '--', 'sh', '-c', 'exit 7');
      expect(failing.code).to.equal(7);
      const shell = await rstlabWithInput('ip -br addr show eth0\nnstat -az TcpOutRsts\nconntrack -L\nexit 3\n', 'lab', 'shell', 'client', '--lab', id);
      expect(shell.code, shell.stderr).to.equal(3);
      expect(shell.stdout + shell.stderr).to.contain('10.0.1.2/24');
      expect(shell.stdout + shell.stderr).to.contain('TcpOutRsts');
    });
  }

  it('the kept labs survive rstlab cleanup and a concurrent run --all', async () => {
    const all = rstlab('run', '--all', '--jobs', '3', '--runs-dir', runsDir);
    await new Promise((r) => setTimeout(r, 3000));
    const cleanup = await rstlab('cleanup');
    expect(cleanup.code, cleanup.stderr).to.equal(0);
    for (const id of Object.values(labs)) expect(cleanup.stdout).to.match(new RegExp(`^left ${id} .*kept lab`, 'm'));
    const r = await all;
    expect(r.code, r.stderr.slice(-2000)).to.equal(0);
    for (const [backend, id] of Object.entries(labs)) {
      const ss = await rstlab('lab', 'exec', 'client', '--lab', id!, '--', 'ss', '-tan');
      expect(ss.code, `${backend} ${id}: ${ss.stderr}`).to.equal(0);
    }
  });

  for (const backend of backends) {
    it(`${backend}: run closed-port --lab ID runs inside the kept lab and leaves its rules as they were`, async () => {
      const id = labs[backend]!;
      const before = await rules(id);
      // a rule the run's scenario adds in a step: it must be gone afterwards
      const r = await rstlab('run', 'firewall-reject', '--lab', id, '--runs-dir', runsDir);
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      expect(r.stdout).to.contain(`lab ${id} on ${backend}`);
      expect(await rules(id)).to.equal(before);
      const cp = await rstlab('run', 'closed-port', '--lab', id, '--runs-dir', runsDir);
      expect(cp.code, cp.stdout + cp.stderr).to.equal(0);
      const report = JSON.parse(readFileSync(join(runDirOf(cp.stdout), 'report.json'), 'utf8')) as { labId: string; backend: string };
      expect(report.labId).to.equal(id);
      expect(report.backend).to.equal(backend);
      expect(traces(id).length + (await dockerContainers(id)).length).to.be.greaterThan(0);
    });

    it(`${backend}: lab down leaves nothing of the lab`, async () => {
      const id = labs[backend]!;
      const r = await rstlab('lab', 'down', id);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.contain('removed');
      delete labs[backend];
      expect(traces(id)).to.deep.equal([]);
      expect(await dockerContainers(id)).to.deep.equal([]);
      const again = await rstlab('lab', 'exec', 'client', '--lab', id, '--', 'true');
      expect(again.code).to.equal(2);
    });
  }

  it('bad input is exit 2 with one line: an unknown host, a missing lab, down without a lab', async () => {
    for (const args of [['lab', 'exec', 'router', '--lab', 'nosuch', '--', 'true'], ['run', 'closed-port', '--lab', 'nosuch'], ['lab', 'down'], ['lab', 'down', 'nosuch'], ['lab', 'up', '--variant', 'control']]) {
      const r = await rstlab(...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(2);
      expect(r.stderr.trim().split('\n').length, args.join(' ')).to.equal(1);
    }
  });
});
