// Deadlines, aborts and the checks made before a lab is built, without a lab: the agent
// client is driven by real Node processes on this machine that play a broken agent.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../../src/agent/client.js';
import { AbortedError, DeadlineError, InputError, LabBrokeError, abortable, withDeadline } from '../../src/errors.js';
import type { Lab } from '../../src/lab/backend.js';
import { start } from '../../src/lab/process.js';
import { writeFileAtomically } from '../../src/report/json.js';
import { STEP_MS, stepDeadline, stepWaitsFor } from '../../src/run/deadlines.js';
import { checkOutputFile, checkRunsDir, makeFolder } from '../../src/run/preflight.js';
import { loadScenario } from '../../src/scenario/load.js';
import { Step } from '../../src/scenario/schema.js';

/** A "lab" whose hosts are this machine, whose agent is the script given. */
function hostLab(script: string): Lab {
  return {
    id: 'unit',
    backend: 'netns',
    ports: { min: 20000, max: 20999 },
    spawn: (_h, argv) => start(argv[0]!, argv.slice(1)),
    exec: () => Promise.reject(new Error('not used')),
    agentArgv: () => [process.execPath, '--input-type=module', '-e', script],
    terminalArgv: (_h, argv) => argv,
    down: () => Promise.resolve(),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
}

async function failureOf(script: string, readyMs = 5000): Promise<{ error: Error; reported: Error[]; ms: number; agent: AgentClient }> {
  const reported: Error[] = [];
  const t = Date.now();
  const agent = AgentClient.start(hostLab(script), 'server', { onEvent: () => undefined, onFailure: (e) => reported.push(e), readyMs });
  const error = await agent.ready.then(() => agent.request({ cmd: 'counters' }), (e: Error) => Promise.reject(e)).then(
    () => new Error('no failure'),
    (e: Error) => e,
  );
  await agent.stop();
  return { error, reported, ms: Date.now() - t, agent };
}

describe('deadlines and aborts', () => {
  it('withDeadline says what it waited for, and lets a prompt answer through', async () => {
    const e = await withDeadline(new Promise(() => undefined), 30, 'the moon').catch((x: Error) => x);
    expect(e).to.be.instanceOf(DeadlineError);
    expect((e as Error).message).to.equal('waited 30 ms for the moon');
    expect(await withDeadline(Promise.resolve(4), 30, 'x')).to.equal(4);
  });

  it('abortable rejects with the abort\'s Error reason (a broken lab), else AbortedError (Ctrl-C)', async () => {
    const a = new AbortController();
    const p = abortable(new Promise(() => undefined), a.signal);
    a.abort(new LabBrokeError('the agent in client ended'));
    expect(await p.catch((e: Error) => e)).to.be.instanceOf(LabBrokeError);
    const b = new AbortController();
    const q = abortable(new Promise(() => undefined), b.signal);
    b.abort('SIGINT');
    expect(await q.catch((e: Error) => e)).to.be.instanceOf(AbortedError);
  });

  it('every step has a deadline: the default, its own timeoutMs, a sleep its time on top', () => {
    const parse = (s: object) => Step.parse(s);
    expect(stepDeadline(parse({ do: 'connect', id: 'c1', host: 'client', to: 'server', port: 23 }))).to.equal(STEP_MS);
    expect(stepDeadline(parse({ do: 'connect', id: 'c1', host: 'client', to: 'server', port: 23, timeoutMs: 200_000 }))).to.equal(200_000);
    expect(stepDeadline(parse({ do: 'sleep', ms: 4000 }))).to.equal(4000 + STEP_MS);
    expect(stepDeadline(parse({ do: 'waitFor', host: 'client', conn: 'c1', event: 'end', timeoutMs: 15_000 }))).to.be.above(15_000);
    expect(stepWaitsFor(parse({ do: 'connect', id: 'c1', host: 'client', to: 'server', port: 23 }))).to.equal('connect c1 from client to server:23 to succeed or fail');
    expect(() => parse({ do: 'send', host: 'client', conn: 'c1', timeoutMs: 0 })).to.throw();
  });
});

describe('the agent client: a broken agent fails at once, naming its host and its stderr', function () {
  this.timeout(20_000);

  it('one that exits at start', async () => {
    const { error, reported, ms } = await failureOf(`process.stderr.write('boom at start\\n'); process.exit(4);`);
    expect(error).to.be.instanceOf(LabBrokeError);
    expect(error.message).to.match(/^the agent in server ended \(exit 4\) before it was ready; its last stderr lines:\n {2}\| boom at start$/);
    expect(reported).to.have.length(1);
    expect(ms).to.be.below(3000);
  });

  it('one that never becomes ready', async () => {
    const { error, ms } = await failureOf(`process.stderr.write('stuck\\n'); setInterval(() => {}, 1000);`, 300);
    expect(error.message).to.match(/^the agent in server did not become ready within 300 ms; its last stderr lines:\n {2}\| stuck$/);
    expect(ms).to.be.below(3000);
  });

  it('one that prints a line that is not JSON', async () => {
    const { error } = await failureOf(`console.log('not json'); setInterval(() => {}, 1000);`);
    expect(error.message).to.match(/^the agent in server printed a line that is not JSON: "not json"; it wrote nothing on stderr$/);
  });

  it('one that never answers a request: the request\'s deadline', async () => {
    const agent = AgentClient.start(hostLab(`console.log(JSON.stringify({ ready: true })); setInterval(() => {}, 1000);`), 'client', { onEvent: () => undefined, onFailure: () => undefined });
    await agent.ready;
    const e = await agent.request({ cmd: 'counters' }, 100).catch((x: Error) => x);
    expect((e as Error).message).to.equal('waited 100 ms for the agent in client to answer counters');
    await agent.stop();
  });

  it('one that dies with a request waiting: the request fails at once, and later ones too', async () => {
    const agent = AgentClient.start(
      hostLab(`console.log(JSON.stringify({ ready: true })); process.stdin.on('data', () => { process.stderr.write('dying\\n'); process.exit(3); });`),
      'firewall',
      { onEvent: () => undefined, onFailure: () => undefined },
    );
    await agent.ready;
    const t = Date.now();
    const e = await agent.request({ cmd: 'counters' }, 10_000).catch((x: Error) => x);
    expect(Date.now() - t).to.be.below(3000);
    expect((e as Error).message).to.match(/^the agent in firewall ended \(exit 3\) during the run; its last stderr lines:\n {2}\| dying$/);
    expect(await agent.request({ cmd: 'counters' }).catch((x: Error) => x)).to.equal(e);
    await agent.stop();
  });
});

describe('checked before a lab is built', () => {
  let tmp: string;
  before(() => (tmp = mkdtempSync(join(tmpdir(), 'rstlab-unit-robust-'))));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  const inputError = async (p: Promise<unknown>) => {
    const e = await p.then(() => undefined, (x: Error) => x);
    expect(e).to.be.instanceOf(InputError);
    return (e as InputError).located();
  };

  it('makeFolder does not spin where Node\'s recursive mkdir does (/proc)', async () => {
    expect(await inputError(makeFolder('/proc/x/y', '--runs-dir'))).to.match(/cannot make the folder \/proc\/x/);
    await makeFolder(join(tmp, 'a/b/c'), '--runs-dir');
    expect(readdirSync(join(tmp, 'a/b'))).to.deep.equal(['c']);
  });

  it('a runs folder where no run folder can be made', async () => {
    expect(await inputError(checkRunsDir('/proc'))).to.match(/--runs-dir \/proc: cannot make a folder in \/proc:/);
    // a runs folder still to be made: checked where it would be made, and nothing is left made
    await checkRunsDir(join(tmp, 'runs', 'deeper'));
    expect(existsSync(join(tmp, 'runs'))).to.equal(false);
    expect(readdirSync(tmp).filter((n) => n.startsWith('.rstlab-check-'))).to.deep.equal([]);
  });

  it('a --junit file that is a folder, or in a missing one', async () => {
    expect(await inputError(checkOutputFile(tmp, '--junit'))).to.match(/it is a folder, not a file/);
    expect(await inputError(checkOutputFile(join(tmp, 'nope/j.xml'), '--junit'))).to.match(/does not exist/);
    await checkOutputFile(join(tmp, 'j.xml'), '--junit');
  });

  it('scenario files: FIFO, device, over 1 MB', async () => {
    const fifo = join(tmp, 'f.yaml');
    execFileSync('mkfifo', [fifo]);
    expect(await inputError(loadScenario(fifo))).to.match(/not a regular file/);
    expect(await inputError(loadScenario('/dev/zero'))).to.match(/not a regular file/);
    const big = join(tmp, 'big.yaml');
    writeFileSync(big, Buffer.alloc(1024 * 1024 + 1, 0x23));
    expect(await inputError(loadScenario(big))).to.match(/at most 1048576/);
  });

  it('writeFileAtomically leaves the whole file and no temp file', async () => {
    const f = join(tmp, 'report.json');
    writeFileSync(f, 'old');
    await writeFileAtomically(f, '{"new":true}\n');
    expect(readFileSync(f, 'utf8')).to.equal('{"new":true}\n');
    expect(readdirSync(tmp).filter((n) => n.includes('.tmp'))).to.deep.equal([]);
  });
});
