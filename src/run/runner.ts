// One scenario run: lab up → agents → sysctls and rules → captures ready → steps →
// captures drained → observations → verdict, and the lab down on every path.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { AgentClient, REQUEST_MS } from '../agent/client.js';
import type { AgentEvent, Request } from '../agent/protocol.js';
import { startCapture, type Capture } from '../capture/capture.js';
import { decodeCaptureFileWithIcmp } from '../capture/pcap.js';
import { startKernelResetTrace, type KernelResetTrace } from '../capture/kernel-resets.js';
import { AbortedError, abortable, InputError, LabError, withDeadline } from '../errors.js';
import { newLabId, type Backend, type Lab } from '../lab/backend.js';
import type { Plan } from '../scenario/plan.js';
import { iptablesError, refusedRule, restoreText, ruleArgv } from '../scenario/iptables-rule.js';
import { applyRuleset, loadRuleset } from '../firewall/ruleset.js';
import type { Step } from '../scenario/schema.js';
import { verify, type Verdict } from '../verify/verify.js';
import { ADDRESS, HOSTS, type ConnEnd, type ConnObservation, type EndHost, type Host, type HostName, type Observations } from '../vocabulary.js';
import { makeFolder } from './preflight.js';
import { classify, labGone, STEP_MS, stepDeadline, stepWithinDeadline, WAIT_FOR_MS } from './deadlines.js';

export { AbortedError, abortable };

/** Time for the last packets to cross the lab after the last step (veth latency is µs). */
const SETTLE_MS = 50;

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
}

async function runDir(runsDir: string, plan: Plan, labId: string): Promise<string> {
  const time = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const base = join(runsDir, `${time}-${plan.name}${plan.variant === 'cause' ? '' : `-${plan.variant}`}`);
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

/** What the runner knows of the scenario's connections while the steps run (firewall-test's rows too). */
export class Connections {
  readonly conns: Record<string, ConnObservation> = {};
  /** accepted ends not yet matched to a connection, by `${host} ${agent name}` */
  private readonly accepted = new Map<string, ConnEnd & { agentName: string }>();
  /** accepted ends already matched to a connection, by `${host} ${agent name}`: their later events */
  private readonly linked = new Map<string, ConnEnd>();
  private readonly agentNames = new Map<ConnEnd, string>();
  private readonly waiters = new Set<() => void>();

  constructor(private readonly t0: () => number) {}

  connect(id: string, host: EndHost, remotePort: number): void {
    this.conns[id] = { id, initiator: { host, remotePort, events: [] } };
    this.agentNames.set(this.conns[id]!.initiator, id);
  }

  onEvent(host: HostName, e: AgentEvent): void {
    const t = e.t - this.t0();
    const event = { t, event: e.event, ...(e.code ? { code: e.code } : {}), ...(e.bytes ? { bytes: e.bytes } : {}) };
    if (e.event === 'accepted') {
      this.accepted.set(`${host} ${e.conn}`, { host: host as EndHost, localPort: e.localPort, remotePort: e.remotePort, events: [event], agentName: e.conn });
    } else {
      const end = this.conns[e.conn]?.initiator.host === host ? this.conns[e.conn]!.initiator : this.accepted.get(`${host} ${e.conn}`) ?? this.linked.get(`${host} ${e.conn}`);
      if (!end) return;
      end.events.push(event);
      if (e.event === 'connected') end.localPort = e.localPort;
    }
    this.link();
  }

  /** An accepted end belongs to the connection whose initiator's local port is its remote port. */
  private link(): void {
    for (const [key, end] of this.accepted) {
      const conn = Object.values(this.conns).find((c) => !c.acceptor && c.initiator.host !== end.host && c.initiator.localPort === end.remotePort);
      if (!conn) continue;
      const { agentName, ...acceptor } = end;
      conn.acceptor = acceptor;
      this.agentNames.set(acceptor, agentName);
      this.linked.set(key, acceptor);
      this.accepted.delete(key);
    }
    for (const w of this.waiters) w();
  }

  setLocalPort(id: string, port: number | undefined): void {
    const end = this.conns[id]?.initiator;
    if (end && port) end.localPort = port;
    this.link();
  }

  /** The end of connection `id` in `host`, if it is known yet. */
  endOf(id: string, host: EndHost): ConnEnd | undefined {
    const c = this.conns[id];
    return c?.initiator.host === host ? c.initiator : c?.acceptor;
  }

  /** The end of connection `id` in `host`; the accepted end may take a moment to be known. */
  async end(id: string, host: EndHost, timeoutMs = 2000): Promise<ConnEnd> {
    await this.until(() => this.endOf(id, host) !== undefined, timeoutMs);
    const end = this.endOf(id, host);
    if (!end) throw new Error(`connection ${id} has no end in ${host}: it was never accepted there`);
    return end;
  }

  agentName(end: ConnEnd): string {
    return this.agentNames.get(end)!;
  }

  /** Resolve when `ok()` holds, checked after every event; false on timeout. */
  until(ok: () => boolean, timeoutMs: number): Promise<boolean> {
    if (ok()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (!ok()) return;
        done(true);
      };
      const done = (v: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(v);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.waiters.add(check);
    });
  }
}

export async function runScenario(plan: Plan, opts: RunOptions): Promise<RunResult> {
  const start = performance.now();
  const timings: Timings = { labUp: 0, captureReady: 0, steps: 0, verify: 0, labDown: 0, total: 0 };
  // The ruleset file is read and checked on every run (the scenario's check is cached by the
  // scenario's text, which does not hold the ruleset's), before anything is built.
  const ruleset = plan.firewallRuleset && (await loadRuleset(plan.firewallRuleset.file, plan.firewallRuleset.format));
  const labId = newLabId();
  const dir = await runDir(opts.runsDir, plan, labId);
  // Which lab a run folder belongs to, written before the lab exists: a run that is killed
  // leaves no report, and this names the namespaces or containers to look for.
  await writeFile(join(dir, 'lab-id'), `${labId}\n`);
  let t0 = Date.now();
  const connections = new Connections(() => t0);
  const stepFailures: { line: number; message: string }[] = [];

  let lab: Lab | undefined;
  // Kept so that a lab still coming up when the run is interrupted is taken down too.
  let labUp: Promise<Lab> | undefined;
  const agents = {} as Record<Host, AgentClient>;
  let captures: Capture[] = [];
  // Kept from their start, so that captures and a trace instance still being made when
  // the run ends are stopped and removed too.
  let capturing: Promise<Capture[]> | undefined;
  let trace: KernelResetTrace | undefined;
  let traceStart: Promise<KernelResetTrace | undefined> | undefined;
  /** the kernel's names of the lab's listening sockets, to tell its listeners' RSTs from other labs' */
  const listenerSockets = new Set<string>();
  // The run ends early on Ctrl-C (AbortedError) or when the lab breaks under it (an agent
  // ends or breaks its protocol): every wait below is abortable by this one signal.
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  if (opts.signal?.aborted) stop.abort();
  opts.signal?.addEventListener('abort', onSignal, { once: true });
  const guard = <T>(p: Promise<T>) => abortable(p, stop.signal);
  try {
    labUp = opts.backend.up(labId);
    lab = await guard(labUp);
    const agentOpts = { onEvent: (host: HostName, e: AgentEvent) => connections.onEvent(host, e), onFailure: (e: Error) => stop.abort(e) };
    for (const h of HOSTS) agents[h] = AgentClient.start(lab, h, agentOpts);
    // Captures and the kernel's reset trace need only the lab's hosts: they start while the
    // agents do (a Node start each, most of lab up). Nothing is sent before the first step.
    capturing = Promise.all(plan.capture.map((p) => startCapture(lab!, p, join(dir, `${p}.pcap`))));
    capturing.catch(() => undefined); // awaited below; a failure is not unhandled meanwhile
    if (opts.traceResets) {
      traceStart = startKernelResetTrace(labId, lab.ports);
      traceStart.catch(() => undefined);
    }
    await guard(Promise.all(HOSTS.map((h) => agents[h].ready)));
    timings.labUp = performance.now() - start;

    // The lab hosts' own settings: the firewall's ruleset file and rules, then sysctls. net.netfilter.*
    // sysctls exist only once nf_conntrack is loaded: a conntrack rule loads it, and so
    // does asking for the conntrack table (ctnetlink) where no rule does.
    if (ruleset) await guard(withDeadline(applyRuleset(lab, 'firewall', ruleset), STEP_MS, `loading the ruleset ${ruleset.file}`));
    // iptables -w waits for the machine-wide xtables lock, which every lab shares
    if (plan.firewallRules.length > 0) await guard(withDeadline(iptablesRestore(lab, 'firewall', plan.firewallRules, plan.file), STEP_MS, "iptables-restore of the firewall's rules"));
    await guard(setHostSysctls(lab, agents, plan.sysctls, plan.file));

    const capturesStart = performance.now();
    captures = await guard(capturing);
    if (traceStart) trace = await guard(withDeadline(traceStart, REQUEST_MS, 'the kernel reset trace to start'));
    const before = await guard(Promise.all(HOSTS.map((h) => agents[h].request({ cmd: 'counters' }))));
    timings.captureReady = performance.now() - capturesStart;

    const stepsStart = performance.now();
    t0 = Date.now();
    const snapshots: Observations['snapshots'] = {};
    for (const { step, line } of plan.steps) {
      try {
        await guard(stepWithinDeadline(step, runStep(step, { lab, agents, connections, snapshots, listenerSockets, signal: stop.signal, answerMs: stepDeadline(step) + 1_000 })));
      } catch (e) {
        if (e instanceof AbortedError || e instanceof LabError) throw e;
        if (e instanceof InputError) throw new InputError(e.message, plan.file, line);
        stepFailures.push({ line, message: `step ${step.do} failed: ${(e as Error).message}` });
        break;
      }
    }
    // A step that failed because the lab is gone is not the scenario's failure.
    if (stepFailures.length > 0 && (await labGone(lab))) throw new LabError('the lab is gone');
    await guard(delay(SETTLE_MS));
    // The end of the run's evidence, all at once: the captures drained, the kernel's
    // reasons read, the counters after.
    const stopping = captures;
    captures = [];
    const [, kernelResets, after] = await guard(Promise.all([
      Promise.all(stopping.map((c) => c.stop())),
      trace ? withDeadline(trace.stop(listenerSockets), REQUEST_MS, 'the kernel reset trace to stop') : undefined,
      Promise.all(HOSTS.map((h) => agents[h].request({ cmd: 'counters' }))),
    ]));
    timings.steps = performance.now() - stepsStart;

    const verifyStart = performance.now();
    const packets: Observations['packets'] = {};
    const icmp: NonNullable<Observations['icmp']> = {};
    for (const p of plan.capture) ({ tcp: packets[p], icmp: icmp[p] } = await decodeCaptureFileWithIcmp(join(dir, `${p}.pcap`)));
    const counters: Observations['counters'] = {};
    HOSTS.forEach((h, i) => (counters[h] = { before: before[i]!.counters ?? {}, after: after[i]!.counters ?? {} }));
    const obs: Observations = { packets, icmp, conns: connections.conns, counters, snapshots, ...(kernelResets ? { kernelResets } : {}) };
    const verdict = verify(plan.expect, obs, { capture: plan.capture });
    for (const f of stepFailures) {
      verdict.results.unshift({ line: f.line, kind: 'step', passed: false, summary: f.message });
      verdict.passed = false;
    }
    timings.verify = performance.now() - verifyStart;
    return { plan, backend: opts.backend.name, labId, dir, t0, obs, verdict, timings };
  } catch (e) {
    throw await classify(e, lab, stop.signal);
  } finally {
    opts.signal?.removeEventListener('abort', onSignal);
    const downStart = performance.now();
    // Each part of the teardown is bounded, so that the lab always comes down.
    const bounded = <T>(p: Promise<T> | undefined, what: string): Promise<T | undefined> | undefined => (p ? withDeadline(p, 5_000, what).catch(() => undefined) : undefined);
    if (!trace && traceStart) trace = await withDeadline(traceStart, 5_000, 'the kernel reset trace to start').catch(() => undefined);
    // removing the trace instance waits for the kernel: it runs beside the rest of the teardown
    const removing = bounded(trace?.remove(), 'the kernel reset trace to be removed');
    if (captures.length === 0 && capturing) captures = (await bounded(capturing, 'the captures to start')) ?? [];
    await Promise.all([...captures.map((c) => c.stop().catch(() => undefined)), ...Object.values(agents).map((a) => a.stop())]);
    lab ??= await labUp?.catch(() => undefined);
    await Promise.all([lab?.down(), removing]);
    timings.labDown = performance.now() - downStart;
    timings.total = performance.now() - start;
  }
}

/** Each host's sysctls. net.netfilter.* exist only once nf_conntrack is loaded in the host:
 * asking for its conntrack table (ctnetlink) loads it where no rule did. */
export async function setHostSysctls(lab: Lab, agents: Record<Host, AgentClient>, sysctls: Partial<Record<Host, Record<string, string | number>>>, file: string): Promise<void> {
  const all = Object.entries(sysctls) as [Host, Record<string, string | number>][];
  await Promise.all(all.filter(([, s]) => Object.keys(s).some((n) => n.startsWith('net.netfilter.'))).map(([h]) => withDeadline(lab.exec(h, ['conntrack', '-L']), REQUEST_MS, `conntrack -L in ${h}`)));
  await Promise.all(all.flatMap(([host, s]) => Object.entries(s).map(([name, value]) => setSysctl(agents[host], name, value, file))));
}

/** A sysctl of the scenario's top level, set by the host's agent; one the kernel refuses
 * (no such name in a namespace, a value out of range) is bad input. */
async function setSysctl(agent: AgentClient, name: string, value: string | number, file: string): Promise<void> {
  try {
    await agent.request({ cmd: 'sysctl', name, value });
  } catch (e) {
    if (e instanceof LabError) throw e;
    throw new InputError(`the kernel refused sysctl ${name}=${value} in ${agent.host}: ${(e as Error).message.replace(`${agent.host}: `, '')}`, file);
  }
}

/** Load the firewall's rules in one go (iptables-restore --noflush); a rule iptables refuses
 * is bad input (exit 2), located at the rule in the scenario file. */
async function iptablesRestore(lab: Lab, host: HostName, rules: Plan['firewallRules'], file: string): Promise<void> {
  const { text, ruleOfLine } = restoreText(rules.map((r) => r.rule));
  const r = await lab.exec(host, ['iptables-restore', '-w', '--noflush'], text);
  if (r.code === 0) return;
  const at = rules[refusedRule(r.stderr, ruleOfLine) ?? 0];
  throw new InputError(`iptables-restore in ${host} refused this rule: ${iptablesError(r.stderr)}`, file, at?.line, at?.col);
}

interface StepContext {
  lab: Lab;
  agents: Record<Host, AgentClient>;
  connections: Connections;
  snapshots: Observations['snapshots'];
  listenerSockets: Set<string>;
  signal?: AbortSignal;
  /** how long an agent's answer may take: past the step's deadline, which fails first with what it waited for */
  answerMs: number;
}

const other = (h: EndHost): EndHost => (h === 'client' ? 'server' : 'client');

async function runStep(step: Step, ctx: StepContext): Promise<void> {
  const { connections, lab } = ctx;
  const ask = (host: Host, req: Request) => ctx.agents[host].request(req, ctx.answerMs);
  switch (step.do) {
    case 'listen': {
      const reply = await ask(step.host, { cmd: 'listen', listener: step.id ?? `port${step.port}`, port: step.port, backlog: step.backlog, accept: step.accept, read: step.read });
      for (const s of reply.listenerSockets ?? []) ctx.listenerSockets.add(s);
      return;
    }
    case 'stopListener':
      await ask(step.host, { cmd: 'stopListener', listener: step.listener });
      return;
    case 'connect': {
      connections.connect(step.id, step.host, step.port);
      const reply = await ask(step.host, {
        cmd: 'connect', conn: step.id, address: ADDRESS[step.to], port: step.port, localPort: step.localPort && lab.ports.min + step.localPort.offset, keepAliveMs: step.keepAliveMs, wait: step.wait,
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
      await delay(step.ms, undefined, { signal: ctx.signal }).catch(() => undefined);
      return;
    case 'sysctl':
      await ask(step.host, { cmd: 'sysctl', name: step.name, value: step.value });
      return;
    case 'iptables': {
      // argv, never a shell: the rule's words (quotes kept intact) go to iptables as they are.
      // A rule iptables refuses is bad input, as it is in the firewall's ruleset (exit 2).
      const r = await lab.exec(step.host, ['iptables', '-w', ...ruleArgv(step.rule)]);
      if (r.code !== 0) throw new InputError(`iptables in ${step.host} refused this rule: ${iptablesError(r.stderr)}`);
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
        cmd: 'forge', src: ADDRESS[step.host], dst: ADDRESS[other(step.host)], sport: end.localPort!, dport: end.remotePort!,
        seq: step.seq, ack: step.ack, flags: step.flags, bytes: step.bytes,
      });
      return;
    }
    case 'snapshot': {
      const reply = await ask(step.host, { cmd: 'snapshot' });
      (ctx.snapshots[step.host] ??= {})[step.name] = reply.sockets ?? [];
      return;
    }
    default: {
      const never: never = step;
      throw new Error(`unknown step ${JSON.stringify(never)}`);
    }
  }
}
