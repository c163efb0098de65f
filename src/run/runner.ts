// One scenario run: lab up (session.ts) → sysctls and rules → captures ready → steps →
// captures drained → observations → verdict, and the lab down on every path.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Request } from '../agent/protocol.js';
import { AbortedError, abortable, InputError, LabError, withDeadline } from '../errors.js';
import { applyRuleset, loadRuleset } from '../firewall/ruleset.js';
import { announce, newLabId, type Backend, type Lab } from '../lab/backend.js';
import type { Plan } from '../scenario/plan.js';
import { keepLabState } from './kept-lab.js';
import { iptablesError, refusedRule, restoreText, ruleArgv } from '../scenario/iptables-rule.js';
import type { Step } from '../scenario/schema.js';
import { verify, type Verdict } from '../verify/verify.js';
import { HOSTS, addressOf, type EndHost, type Family, type Host, type HostName, type Observations } from '../vocabulary.js';
import { IPTABLES } from '../scenario/family.js';
import { Connections } from './connections.js';
import { makeFolder } from './preflight.js';
import { labGone, STEP_MS, stepDeadline, stepWithinDeadline, WAIT_FOR_MS } from './deadlines.js';
import { LabSession } from './session.js';

export { AbortedError, abortable };

export interface Timings {
  labUp: number;
  captureReady: number;
  steps: number;
  verify: number;
  labDown: number;
  total: number;
}

export interface RunResult {
  plan: Plan;
  backend: string;
  labId: string;
  dir: string;
  /** epoch ms of the first step; event times are relative to it */
  t0: number;
  obs: Observations;
  verdict: Verdict;
  timings: Timings;
}

export interface RunOptions {
  backend: Backend;
  runsDir: string;
  /** aborted on SIGINT/SIGTERM: the run stops where it is and the lab comes down */
  signal?: AbortSignal;
  /** record the kernel's reason for each RST from tracefs, where the machine allows it */
  traceResets?: boolean;
  /** a kept lab to run in (rstlab run --lab): neither built nor taken down; what the run
   * changes in it (rules, sysctls) is undone afterwards (kept-lab.ts) */
  lab?: Lab;
}

async function runDir(runsDir: string, plan: Plan, labId: string): Promise<string> {
  const time = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const base = join(runsDir, `${time}-${plan.name}${plan.variant === 'cause' ? '' : `-${plan.variant}`}${plan.family === 6 ? '-v6' : ''}`);
  await makeFolder(runsDir, 'runs folder');
  try {
    await mkdir(base);
    return base;
  } catch {
    // another run of the same scenario started in the same second
    const dir = `${base}-${labId}`;
    await mkdir(dir);
    return dir;
  }
}

export async function runScenario(plan: Plan, opts: RunOptions): Promise<RunResult> {
  // a skipped plan (no IPv6 form) is the caller's to report; running it would be a bug
  if (plan.skip !== undefined) throw new Error(`${plan.name} is skipped over IPv6: ${plan.skip}`);
  const start = performance.now();
  const timings: Timings = { labUp: 0, captureReady: 0, steps: 0, verify: 0, labDown: 0, total: 0 };
  // The ruleset file is read and checked on every run (the scenario's check is cached by the
  // scenario's text, which does not hold the ruleset's), before anything is built.
  const ruleset = plan.firewallRuleset && (await loadRuleset(plan.firewallRuleset.file, plan.firewallRuleset.format));
  const labId = opts.lab?.id ?? newLabId();
  const dir = await runDir(opts.runsDir, plan, labId);
  // Which lab a run folder belongs to, written before the lab exists: a run that is killed
  // leaves no report, and this names the namespaces or containers to look for.
  await writeFile(join(dir, 'lab-id'), `${labId}\n`);
  let t0 = Date.now();
  const connections = new Connections(() => t0);
  const stepFailures: { line: number; message: string }[] = [];
  const session = new LabSession({
    backend: opts.backend, labId, dir, capture: plan.capture, traceResets: opts.traceResets, signal: opts.signal, impostor: plan.impostor, ...(opts.lab ? { lab: opts.lab } : {}),
    onEvent: (host, e) => connections.onEvent(host, e),
  });
  const { agents } = session;
  /** in a kept lab: puts back the rules and sysctls the run changed */
  let restoreKept: (() => Promise<void>) | undefined;
  try {
    const lab = await session.up();
    if (opts.lab) restoreKept = await session.guard(keepLabState(lab, plan));
    timings.labUp = performance.now() - start;

    // The lab hosts' own settings: the firewall's ruleset file and rules, then sysctls.
    if (ruleset) await session.guard(withDeadline(applyRuleset(lab, 'firewall', ruleset), STEP_MS, `loading the ruleset ${ruleset.file}`));
    // iptables -w waits for the machine-wide xtables lock, which every lab shares
    if (plan.firewallRules.length > 0) await session.guard(withDeadline(iptablesRestore(lab, 'firewall', plan.firewallRules, plan.file, plan.family), STEP_MS, `${IPTABLES[plan.family].restore} of the firewall's rules`));
    await session.setSysctls(plan.sysctls, plan.file);

    const capturesStart = performance.now();
    await session.recording();
    const before = await session.guard(Promise.all(HOSTS.map((h) => agents[h].request({ cmd: 'counters' }))));
    timings.captureReady = performance.now() - capturesStart;

    const stepsStart = performance.now();
    t0 = Date.now();
    const snapshots: Observations['snapshots'] = {};
    for (const { step, line } of plan.steps) {
      try {
        await session.guard(stepWithinDeadline(step, runStep(step, { session, connections, snapshots, answerMs: stepDeadline(step) + 1_000, family: plan.family })));
      } catch (e) {
        if (e instanceof AbortedError || e instanceof LabError) throw e;
        if (e instanceof InputError) throw new InputError(e.message, plan.file, line);
        stepFailures.push({ line, message: `step ${step.do} failed: ${(e as Error).message}` });
        break;
      }
    }
    // A step that failed because the lab is gone is not the scenario's failure.
    if (stepFailures.length > 0 && (await labGone(lab))) throw new LabError('the lab is gone');
    const { kernelResets, alongside: after } = await session.finish(() => Promise.all(HOSTS.map((h) => agents[h].request({ cmd: 'counters' }))));
    timings.steps = performance.now() - stepsStart;

    const verifyStart = performance.now();
    const counters: Observations['counters'] = {};
    HOSTS.forEach((h, i) => (counters[h] = { before: before[i]!.counters ?? {}, after: after[i]!.counters ?? {} }));
    const obs: Observations = { ...(await session.decode()), conns: connections.conns, counters, snapshots, ...(kernelResets ? { kernelResets } : {}) };
    const verdict = verify(plan.expect, obs, { capture: plan.capture });
    for (const f of stepFailures) {
      verdict.results.unshift({ line: f.line, kind: 'step', passed: false, summary: f.message });
      verdict.passed = false;
    }
    timings.verify = performance.now() - verifyStart;
    return { plan, backend: opts.backend.name, labId, dir, t0, obs, verdict, timings };
  } catch (e) {
    throw await session.failure(e);
  } finally {
    const downStart = performance.now();
    await session.down();
    await restoreKept?.().catch(() => undefined);
    timings.labDown = performance.now() - downStart;
    timings.total = performance.now() - start;
  }
}

/** Load the firewall's rules in one go (iptables-restore --noflush); a rule iptables refuses
 * is bad input (exit 2), located at the rule in the scenario file. */
export async function iptablesRestore(lab: Lab, host: HostName, rules: Plan['firewallRules'], file: string, family: Family = 4): Promise<void> {
  const { text, ruleOfLine } = restoreText(rules.map((r) => r.rule));
  const restore = IPTABLES[family].restore;
  const r = await lab.exec(host, [restore, '-w', '--noflush'], text);
  if (r.code === 0) return;
  const at = rules[refusedRule(r.stderr, ruleOfLine) ?? 0];
  throw new InputError(`${restore} in ${host} refused this rule: ${iptablesError(r.stderr)}`, file, at?.line, at?.col);
}

interface StepContext {
  session: LabSession;
  connections: Connections;
  snapshots: Observations['snapshots'];
  /** how long an agent's answer may take: past the step's deadline, which fails first with what it waited for */
  answerMs: number;
  /** the IP version of the run: which addresses the ends use, which iptables */
  family: Family;
}

const other = (h: EndHost): EndHost => (h === 'client' ? 'server' : 'client');

async function runStep(step: Step, ctx: StepContext): Promise<void> {
  const { connections, session } = ctx;
  const { lab } = session;
  const ask = (host: Host, req: Request) => session.agents[host].request(req, ctx.answerMs);
  switch (step.do) {
    case 'listen':
      await session.listen(step.host, { listener: step.id ?? `port${step.port}`, port: step.port, backlog: step.backlog, accept: step.accept, read: step.read }, ctx.answerMs);
      return;
    case 'stopListener':
      await session.stopListener(step.host, step.listener, ctx.answerMs);
      return;
    case 'connect': {
      connections.connect(step.id, step.host, step.port);
      const reply = await ask(step.host, {
        cmd: 'connect', conn: step.id, address: addressOf(step.to, ctx.family), port: step.port, localPort: step.localPort && lab.ports.min + step.localPort.offset, keepAliveMs: step.keepAliveMs, wait: step.wait,
      });
      connections.setLocalPort(step.id, reply.localPort);
      return;
    }
    case 'send':
    case 'close':
    case 'resume': {
      const end = await connections.end(step.conn, step.host);
      const conn = connections.agentName(end);
      const req = step.do === 'send' ? { cmd: 'send' as const, conn, bytes: step.bytes } : step.do === 'close' ? { cmd: 'close' as const, conn, how: step.how } : { cmd: 'resume' as const, conn };
      await ask(step.host, req);
      return;
    }
    case 'waitFor': {
      const seen = () => connections.endOf(step.conn, step.host)?.events.some((e) => e.event === step.event) ?? false;
      const waitMs = step.timeoutMs ?? WAIT_FOR_MS;
      if (!(await connections.until(seen, waitMs))) {
        throw new Error(`${step.host} end of ${step.conn} saw no ${step.event} within ${waitMs} ms`);
      }
      return;
    }
    case 'sleep':
      await delay(step.ms, undefined, { signal: session.signal }).catch(() => undefined);
      return;
    case 'sysctl':
      await ask(step.host, { cmd: 'sysctl', name: step.name, value: step.value });
      return;
    case 'iptables': {
      // argv, never a shell: the rule's words (quotes kept intact) go to iptables as they are.
      // A rule iptables refuses is bad input, as it is in the firewall's ruleset (exit 2).
      // Over IPv6 the plan holds the rule in its IPv6 form (scenario/family.ts), for ip6tables.
      const program = IPTABLES[ctx.family].iptables;
      const r = await lab.exec(step.host, [program, '-w', ...ruleArgv(step.rule)]);
      if (r.code !== 0) throw new InputError(`${program} in ${step.host} refused this rule: ${iptablesError(r.stderr)}`);
      return;
    }
    case 'killSocket': {
      const end = await connections.end(step.conn, step.host);
      // SOCK_DESTROY through inet_diag: the socket is gone, and the kernel sends the
      // peer a RST only if the socket was still synchronized (a firewall may drop it).
      const r = await lab.exec(step.host, ['ss', '-tnK', 'sport', '=', `:${end.localPort}`, 'and', 'dport', '=', `:${end.remotePort}`]);
      if (r.code !== 0) throw new Error(`ss -K: ${r.stderr.trim()}`);
      return;
    }
    case 'forge': {
      const end = await connections.end(step.conn, step.host);
      await ask(step.host, {
        cmd: 'forge', src: addressOf(step.host, ctx.family), dst: addressOf(other(step.host), ctx.family), sport: end.localPort!, dport: end.remotePort!,
        seq: step.seq, ack: step.ack, flags: step.flags, bytes: step.bytes,
      });
      return;
    }
    case 'snapshot': {
      const reply = await ask(step.host, { cmd: 'snapshot' });
      (ctx.snapshots[step.host] ??= {})[step.name] = reply.sockets ?? [];
      return;
    }
    case 'announce':
      await announce(lab, step.address);
      return;
    default: {
      const never: never = step;
      throw new Error(`unknown step ${JSON.stringify(never)}`);
    }
  }
}
