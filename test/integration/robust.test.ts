// Every way a run ends is clean, and nothing hangs: broken agents, a tcpdump that never
// gets ready, a lab removed under a run, a dropped SYN, a sysctl the kernel refuses, a
// failing worker and Ctrl-C in `run --all --jobs 4`, internal errors, hostile paths.
//
// A broken agent or a broken run is made in a copy of the compiled tree in a temp folder
// (node_modules symlinked), so nothing on the machine changes for anyone else; a tcpdump
// that never gets ready is a script named by RSTLAB_TCPDUMP. Each test looks only at the
// labs it made itself: every run folder holds a `lab-id` file, written before the lab is
// built, and the lab's namespaces are rstlab-<id>-<host>.
import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ROOT, cliEnv, until, type CliResult } from '../helpers.js';

interface Run extends CliResult {
  ms: number;
}

/** Run a CLI (the project's or a copy's) with its own runs folder. */
function startRun(cli: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const started = Date.now();
  const child = spawn(process.execPath, [cli, ...args], { cwd: tmp, env: { ...cliEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<Run>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - started })));
  return { child, done };
}

const runCli = (cli: string, args: string[], env?: NodeJS.ProcessEnv) => startRun(cli, args, env).done;

/** The lab ids of the runs in a runs folder. */
function labIds(runsDir: string): string[] {
  if (!existsSync(runsDir)) return [];
  return readdirSync(runsDir)
    .map((d) => join(runsDir, d, 'lab-id'))
    .filter((f) => existsSync(f))
    .map((f) => readFileSync(f, 'utf8').trim());
}

function namespacesOf(id: string): string[] {
  let all: string[] = [];
  try {
    all = readdirSync('/run/netns');
  } catch {
    // no /run/netns: no namespace at all
  }
  return all.filter((n) => n.startsWith(`rstlab-${id}-`));
}

/** Nothing of these runs is left: no namespace of any of their labs. */
function expectNoLabLeft(runsDir: string, atLeast = 1): string[] {
  const ids = labIds(runsDir);
  expect(ids.length, `lab ids in ${runsDir}`).to.be.at.least(atLeast);
  for (const id of ids) expect(namespacesOf(id), `namespaces of lab ${id}`).to.deep.equal([]);
  return ids;
}

function expectNoStack(r: Run): void {
  expect(r.stderr).not.to.match(/^\s+at /m);
  expect(r.stdout + r.stderr).not.to.match(/\bat .*\.js:\d+:\d+/);
}

function pidsAlive(pids: number[]): number[] {
  return pids.filter((p) => existsSync(`/proc/${p}`) && !readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.startsWith('Z'));
}

/** The direct children of a process with the given command name. */
function childrenNamed(pid: number, comm: string): number[] {
  const kids: number[] = [];
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      kids.push(...readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    } catch {
      // the thread ended
    }
  }
  return kids.filter((k) => {
    try {
      return readFileSync(`/proc/${k}/comm`, 'utf8').trim() === comm;
    } catch {
      return false;
    }
  });
}

let tmp: string;
let counter = 0;
const runsDir = () => join(tmp, `runs-${++counter}`);

/** A copy of the compiled tree whose agent is `agent` (the real one stays as real-main.js),
 * with the scenarios given (default: the project's). */
function treeWith(opts: { agent?: string; scenarios?: Record<string, string>; patch?: (dir: string) => void }): string {
  const dir = mkdtempSync(join(tmp, 'tree-'));
  cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  if (opts.scenarios) {
    mkdirSync(join(dir, 'scenarios'));
    for (const [name, text] of Object.entries(opts.scenarios)) writeFileSync(join(dir, 'scenarios', `${name}.yaml`), text);
  } else {
    symlinkSync(join(ROOT, 'scenarios'), join(dir, 'scenarios'));
  }
  if (opts.agent) {
    const agentDir = join(dir, 'dist/src/agent');
    cpSync(join(agentDir, 'main.js'), join(agentDir, 'real-main.js'));
    writeFileSync(join(agentDir, 'main.js'), opts.agent);
  }
  opts.patch?.(dir);
  return join(dir, 'dist/src/cli/main.js');
}

/** An agent that misbehaves in the server host only (the host whose address is 10.0.2.2),
 * and is the real agent in the others. */
const serverAgent = (misbehave: string) => `
import os from 'node:os';
const isServer = Object.values(os.networkInterfaces()).flat().some((a) => a && a.address === '10.0.2.2');
if (isServer) {
${misbehave}
} else {
  await import('./real-main.js');
}
`;

const scenario = (name: string, body: string) => `name: ${name}
summary: a scenario of the robustness tests
explanation: made by test/integration/robust.test.ts
${body}`;

/** Listen, connect, then a long sleep: a run that lasts 30 s unless something ends it. */
const LONG = scenario('long', `steps:
  - do: listen
    host: server
    port: 80
  - do: connect
    id: c1
    host: client
    to: server
    port: 80
  - do: sleep
    ms: 30000
expect:
  - noRst: {}
`);

const SHORT = scenario('short', `steps:
  - do: listen
    host: server
    port: 80
  - do: connect
    id: c1
    host: client
    to: server
    port: 80
expect:
  - noRst: {}
`);

/** A top-level sysctl of the right shape that the kernel refuses: tcp_syn_retries is
 * bounded to 1..127 (net/ipv4/sysctl_net_ipv4.c, tcp_syn_retries_max). */
const REFUSED_SYSCTL = scenario('refused-sysctl', `sysctls:
  client:
    net.ipv4.tcp_syn_retries: 200
steps:
  - do: listen
    host: server
    port: 80
expect:
  - noRst: {}
`);

describe('every way a run ends is clean (netns)', function () {
  this.timeout(120_000);

  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'rstlab-robust-'));
    writeFileSync(join(tmp, 'long.yaml'), LONG);
    writeFileSync(join(tmp, 'short.yaml'), SHORT);
    writeFileSync(join(tmp, 'refused-sysctl.yaml'), REFUSED_SYSCTL);
  });

  after(() => {
    rmSync(tmp, { recursive: true, force: true });
  });

  describe('a broken agent fails its run within seconds, names its host, leaves nothing', () => {
    it('an agent that exits at start', async () => {
      const cli = treeWith({ agent: serverAgent(`process.stderr.write('agent: cannot load raw-socket: deliberate failure\\n'); process.exit(7);`) });
      const dir = runsDir();
      const r = await runCli(cli, ['run', join(tmp, 'short.yaml'), '--runs-dir', dir]);
      expect(r.code, r.stderr).to.equal(3);
      expect(r.ms).to.be.below(10_000);
      expect(r.stderr).to.match(/the agent in server ended \(exit 7\) before it was ready/);
      expect(r.stderr).to.contain('| agent: cannot load raw-socket: deliberate failure');
      expectNoStack(r);
      const [id] = expectNoLabLeft(dir);
      expect(r.stderr).to.contain(`lab ${id}`);
    });

    it('an agent that never becomes ready', async () => {
      const cli = treeWith({ agent: serverAgent(`process.stderr.write('agent: waiting for something that never comes\\n'); setInterval(() => undefined, 60_000);`) });
      const dir = runsDir();
      const r = await runCli(cli, ['run', join(tmp, 'short.yaml'), '--runs-dir', dir]);
      expect(r.code, r.stderr).to.equal(3);
      expect(r.ms).to.be.below(10_000);
      expect(r.stderr).to.match(/the agent in server did not become ready within \d+ ms/);
      expect(r.stderr).to.contain('| agent: waiting for something that never comes');
      expectNoStack(r);
      expectNoLabLeft(dir);
    });

    it('an agent that dies mid-run (during a 30 s sleep)', async () => {
      const cli = treeWith({
        agent: serverAgent(`
  process.stdin.on('data', (d) => {
    if (String(d).includes('"cmd":"listen"')) setTimeout(() => { process.stderr.write('agent: deliberate crash mid-run\\n'); process.exit(9); }, 300);
  });
  await import('./real-main.js');`),
      });
      const dir = runsDir();
      const r = await runCli(cli, ['run', join(tmp, 'long.yaml'), '--runs-dir', dir]);
      expect(r.code, r.stderr).to.equal(3);
      expect(r.ms).to.be.below(10_000);
      expect(r.stderr).to.match(/the agent in server ended \(exit 9\) during the run/);
      expect(r.stderr).to.contain('| agent: deliberate crash mid-run');
      expectNoStack(r);
      expectNoLabLeft(dir);
    });

    it('an agent that prints a line that is not JSON: reported, not thrown', async () => {
      const cli = treeWith({ agent: serverAgent(`process.stdout.write('hello, this is not JSON\\n'); await import('./real-main.js');`) });
      const dir = runsDir();
      const r = await runCli(cli, ['run', join(tmp, 'short.yaml'), '--runs-dir', dir]);
      expect(r.code, r.stderr).to.equal(3);
      expect(r.ms).to.be.below(10_000);
      expect(r.stderr).to.contain('the agent in server printed a line that is not JSON: "hello, this is not JSON"');
      expectNoStack(r);
      expectNoLabLeft(dir);
    });
  });

  it('a tcpdump that never reports "listening on": a deadline naming the capture point', async () => {
    const fake = join(tmp, `fake-tcpdump-${process.pid}`);
    writeFileSync(fake, '#!/bin/sh\necho "tcpdump: pretending to start" >&2\nexec sleep 60\n');
    chmodSync(fake, 0o755);
    const dir = runsDir();
    const run = startRun(CLI, ['run', join(tmp, 'short.yaml'), '--runs-dir', dir], { RSTLAB_TCPDUMP: fake });
    // the fake tcpdumps are the CLI's children (nsenter execs them): each must be gone after
    const seen = new Set<number>();
    const watch = setInterval(() => {
      try {
        for (const p of childrenNamed(run.child.pid!, 'sleep')) seen.add(p);
      } catch {
        // the CLI ended
      }
    }, 50);
    const r = await run.done;
    clearInterval(watch);
    expect(r.code, r.stderr).to.equal(3);
    expect(r.ms).to.be.below(10_000);
    expect(r.stderr).to.match(/tcpdump on capture point (client|firewall-a|firewall-b|server) \(\w+ eth\d\) did not report "listening on" within \d+ ms: tcpdump: pretending to start/);
    expectNoStack(r);
    expectNoLabLeft(dir);
    expect(seen.size, 'fake tcpdumps seen running').to.be.above(0);
    expect(pidsAlive([...seen])).to.deep.equal([]);
  });

  it('a lab removed under a run (as a cleanup by someone else does): one line, exit 3', async () => {
    const dir = runsDir();
    const run = startRun(CLI, ['run', join(tmp, 'long.yaml'), '--runs-dir', dir]);
    let id = '';
    await until(() => (id = labIds(dir)[0] ?? '') !== '' && namespacesOf(id).length === 3, 10_000, 'the lab to be up');
    await new Promise((r) => setTimeout(r, 1500)); // into the 30 s sleep
    // what cleanup does to a lab: kill what runs in its namespaces, then delete them
    for (const ns of namespacesOf(id)) {
      try {
        for (const pid of execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // gone already
          }
        }
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // the run saw its lab break after the first namespace went, and is taking the rest down itself
      }
    }
    const r = await run.done;
    expect(r.code, r.stderr).to.equal(3);
    expect(r.stderr.trim().split('\n'), r.stderr).to.have.length(1);
    expect(r.stderr).to.contain(`rstlab: the lab ${id} was removed under the run`);
    expectNoStack(r);
    expect(namespacesOf(id)).to.deep.equal([]);
  });

  it('a connect whose SYN is dropped fails its step at the default deadline, saying what it waited for (exit 1)', async () => {
    writeFileSync(join(tmp, 'dropped-syn.yaml'), scenario('dropped-syn', `firewall:
  rules:
    - -A FORWARD -p tcp --dport 23 -j DROP
steps:
  - do: connect
    id: c1
    host: client
    to: server
    port: 23
expect:
  - noRst: {}
`));
    const dir = runsDir();
    const r = await runCli(CLI, ['run', join(tmp, 'dropped-syn.yaml'), '--runs-dir', dir, '--json']);
    expect(r.code, r.stderr).to.equal(1);
    // the default deadline is 10 s; the kernel alone would retry the SYN for about 2 minutes
    expect(r.ms).to.be.within(10_000, 20_000);
    const report = JSON.parse(r.stdout);
    const step = report.results.find((x: { kind: string }) => x.kind === 'step');
    expect(step.passed).to.equal(false);
    expect(step.summary).to.equal('step connect failed: waited 10000 ms for connect c1 from client to server:23 to succeed or fail (set timeoutMs on the step to wait longer)');
    expectNoLabLeft(dir);
    expect(JSON.parse(readFileSync(join(report.dir, 'report.json'), 'utf8')).passed).to.equal(false);
  });

  it('a step with its own timeoutMs: a dropped SYN fails after it', async () => {
    writeFileSync(join(tmp, 'dropped-syn-short.yaml'), scenario('dropped-syn-short', `firewall:
  rules:
    - -A FORWARD -p tcp --dport 23 -j DROP
steps:
  - do: connect
    id: c1
    host: client
    to: server
    port: 23
    timeoutMs: 1500
expect:
  - noRst: {}
`));
    const dir = runsDir();
    const r = await runCli(CLI, ['run', join(tmp, 'dropped-syn-short.yaml'), '--runs-dir', dir]);
    expect(r.code, r.stderr).to.equal(1);
    expect(r.ms).to.be.below(6_000);
    expect(r.stdout).to.contain('waited 1500 ms for connect c1 from client to server:23 to succeed or fail');
    expectNoLabLeft(dir);
  });

  it('a top-level sysctl the kernel refuses: exit 2, one line, the lab down', async () => {
    const dir = runsDir();
    const r = await runCli(CLI, ['run', join(tmp, 'refused-sysctl.yaml'), '--runs-dir', dir]);
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.match(/refused-sysctl\.yaml: the kernel refused sysctl net\.ipv4\.tcp_syn_retries=200 in client/);
    expectNoStack(r);
    expectNoLabLeft(dir);
  });

  it('an internal error: one line, exit 70, the stack only with --debug, the lab down', async () => {
    const cli = treeWith({
      patch: (dir) => {
        const runner = join(dir, 'dist/src/run/runner.js');
        const text = readFileSync(runner, 'utf8');
        expect(text).to.contain('const verdict = verify(');
        writeFileSync(runner, text.replace('const verdict = verify(', "const verdict = (() => { throw new Error('a deliberate bug'); })() ?? verify("));
      },
    });
    const dir = runsDir();
    const r = await runCli(cli, ['run', join(tmp, 'short.yaml'), '--runs-dir', dir]);
    expect(r.code, r.stderr).to.equal(70);
    expect(r.stderr.trim()).to.match(/^rstlab: internal error: a deliberate bug \(please report it at .+, with the output of --debug\)$/);
    expectNoStack(r);
    expectNoLabLeft(dir);
    const dbg = await runCli(cli, ['run', join(tmp, 'short.yaml'), '--runs-dir', dir, '--debug']);
    expect(dbg.code).to.equal(70);
    expect(dbg.stderr).to.match(/^\s+at .*runner\.js/m);
    const env = await runCli(cli, ['run', join(tmp, 'short.yaml'), '--runs-dir', dir], { RSTLAB_DEBUG: '1' });
    expect(env.stderr).to.match(/^\s+at .*runner\.js/m);
    expectNoLabLeft(dir, 3);
  });

  describe('run --all --jobs 4', () => {
    it('a failing worker stops the others, and every lab is down before the exit (its own code)', async () => {
      const long = (n: number) => LONG.replace('name: long', `name: long${n}`);
      const cli = treeWith({ scenarios: { a1: long(1).replace('long1', 'a1'), a2: long(2).replace('long2', 'a2'), a3: long(3).replace('long3', 'a3'), b: REFUSED_SYSCTL.replace('refused-sysctl', 'b') } });
      const dir = runsDir();
      const r = await runCli(cli, ['run', '--all', '--jobs', '4', '--runs-dir', dir]);
      expect(r.code, r.stderr).to.equal(2);
      expect(r.stderr).to.contain('the kernel refused sysctl net.ipv4.tcp_syn_retries=200');
      expect(r.stderr).to.contain('stopping the other runs');
      expect(r.ms).to.be.below(20_000); // the other three would sleep 30 s
      expectNoStack(r);
      expectNoLabLeft(dir, 4);
    });

    it('Ctrl-C leaves no namespace and no tcpdump, exit 130', async () => {
      const dir = runsDir();
      const run = startRun(CLI, ['run', '--all', '--jobs', '4', '--runs-dir', dir]);
      const tcpdumps = new Set<number>();
      await until(() => {
        for (const p of childrenNamed(run.child.pid!, 'tcpdump')) tcpdumps.add(p);
        return tcpdumps.size >= 8;
      }, 30_000, 'several labs capturing');
      run.child.kill('SIGINT');
      const r = await run.done;
      expect(r.code, r.stderr).to.equal(130);
      expectNoStack(r);
      const ids = expectNoLabLeft(dir, 2);
      expect(ids.length).to.be.at.least(2);
      expect(pidsAlive([...tcpdumps])).to.deep.equal([]);
    });
  });

  describe('bad input is refused before any lab is built (exit 2, one line)', () => {
    const refused = async (args: string[], message: RegExp, within = 5_000) => {
      const dir = runsDir();
      const r = await runCli(CLI, [...args, ...(args.includes('--runs-dir') ? [] : ['--runs-dir', dir])]);
      expect(r.code, r.stderr).to.equal(2);
      expect(r.ms).to.be.below(within);
      expect(r.stderr.trim().split('\n'), r.stderr).to.have.length(1);
      expect(r.stderr).to.match(message);
      expectNoStack(r);
      expect(labIds(dir)).to.deep.equal([]);
    };

    it('--runs-dir /proc/x (Node\'s recursive mkdir spins there)', () => refused(['run', 'closed-port', '--runs-dir', '/proc/x'], /--runs-dir \/proc\/x: cannot make a folder in \/proc:/));
    it('--runs-dir naming a file', () => refused(['run', 'closed-port', '--runs-dir', join(tmp, 'short.yaml')], /is not a folder/));
    it('--junit into a missing folder', () => refused(['run', 'closed-port', '--junit', join(tmp, 'no-such-folder/j.xml')], /--junit .*the folder .*no-such-folder does not exist/));
    it('a FIFO as the scenario', async () => {
      const fifo = join(tmp, 'fifo.yaml');
      execFileSync('mkfifo', [fifo]);
      await refused(['run', fifo], /fifo\.yaml: not a regular file/);
    });
    it('a device as the scenario', () => refused(['run', '/dev/zero'], /\/dev\/zero: not a regular file/));
    it('a scenario over 1 MB', async () => {
      const big = join(tmp, 'big.yaml');
      writeFileSync(big, `# ${'x'.repeat(50 * 1024 * 1024)}\n`);
      await refused(['run', big], /big\.yaml: the file is \d+ bytes; a scenario file may be at most 1048576/);
    });
    it('--all with a scenario name', () => refused(['run', '--all', 'closed-port'], /--all .* cannot be combined with a scenario name/));
    it('--all with --variant', () => refused(['run', '--all', '--variant', 'control'], /cannot be combined with --variant/));
    it('--all with --expect-of', () => refused(['run', '--all', '--expect-of', 'control'], /cannot be combined with --expect-of/));
    it('a top-level sysctl this kernel does not have', async () => {
      writeFileSync(join(tmp, 'no-sysctl.yaml'), SHORT.replace('steps:', 'sysctls:\n  client:\n    net.ipv4.tcp_no_such_thing: 1\nsteps:'));
      await refused(['run', join(tmp, 'no-sysctl.yaml')], /no-sysctl\.yaml:6:\d+: no sysctl net\.ipv4\.tcp_no_such_thing on this machine's kernel/);
    });
    it('a sysctl value of the wrong shape', async () => {
      writeFileSync(join(tmp, 'bad-shape.yaml'), SHORT.replace('steps:', 'sysctls:\n  client:\n    net.ipv4.tcp_rmem: "4096 87380"\nsteps:'));
      await refused(['run', join(tmp, 'bad-shape.yaml')], /bad-shape\.yaml:6:\d+: sysctl net\.ipv4\.tcp_rmem takes 3 integers separated by spaces/);
    });
  });

  it('the lab-id file names each run\'s lab, and nothing of a passing run is left', async () => {
    const dir = runsDir();
    const r = await runCli(CLI, ['run', join(tmp, 'short.yaml'), '--runs-dir', dir]);
    expect(r.code, r.stderr).to.equal(0);
    const [id] = expectNoLabLeft(dir);
    expect(id).to.match(/^[a-z0-9]{7}$/);
    expect(readdirSync(join(dir, readdirSync(dir)[0]!)).filter((f) => f.endsWith('.tmp'))).to.deep.equal([]);
  });
});
