// Running a firewall-test matrix: one lab, the ruleset loaded into its firewall host, every
// row's connection at once (each from a client port of its own, so each has its own
// 4-tuple), captures at the four points, and the lab down on every path. The rows are then
// judged from the captures (judge.ts), never from what the sockets said.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { AgentClient } from '../agent/client.js';
import { withDeadline } from '../errors.js';
import { newLabId, type Backend } from '../lab/backend.js';
import { Connections } from '../run/connections.js';
import { STEP_MS } from '../run/deadlines.js';
import { makeFolder } from '../run/preflight.js';
import { LabSession } from '../run/session.js';
import { CAPTURE_POINTS, addressOf, type Host, type Observations } from '../vocabulary.js';
import { needsListener, type Expectations, type PlannedRow } from './expectations.js';
import { applyRuleset, type Ruleset } from './ruleset.js';
import { ruleModel } from './rules.js';
import { startRuleTrace, type RuleTraceResult, type RuleTracer } from './trace.js';

export interface MatrixOptions {
  backend: Backend;
  runsDir: string;
  /** how long a row waits for any answer before it is judged (drop) */
  dropWaitMs: number;
  signal?: AbortSignal;
  traceResets?: boolean;
  /** trace which rule decides each packet of the rows (trace.ts) */
  traceRules?: boolean;
  /** the IPv6 half of an iptables ruleset (--rules6: ip6tables-save), loaded after `ruleset` */
  rules6?: Ruleset;
}

export interface MatrixRun {
  labId: string;
  backend: string;
  dir: string;
  /** each row's local port, by row index */
  localPorts: Map<number, number>;
  obs: Observations;
  seconds: number;
  /** the rows' packets through the firewall's rules, or why they could not be traced */
  ruleTrace?: RuleTraceResult | string;
  /** the IPv6 half's file (--rules6), where one was loaded */
  rules6?: string;
}

/** A local port for each row from the lab's own port range (lab/owner.ts: no other lab alive
 * has these, so no 4-tuple and no kernel trace event is shared), none of them a port any row
 * connects to or listens on. */
export function rowPorts(rows: readonly PlannedRow[], first: number): Map<number, number> {
  const taken = new Set(rows.map((r) => r.port));
  const ports = new Map<number, number>();
  let next = first;
  for (const r of rows) {
    while (taken.has(next)) next++;
    ports.set(r.index, next++);
  }
  return ports;
}

export async function runFolder(runsDir: string, labId: string, what = 'firewall-test'): Promise<string> {
  await makeFolder(runsDir, '--runs-dir');
  const time = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const dir = join(runsDir, `${time}-${what}-${labId}`);
  await mkdir(dir);
  return dir;
}

export async function runMatrix(ruleset: Ruleset, ex: Expectations, opts: MatrixOptions): Promise<MatrixRun> {
  const start = performance.now();
  const labId = newLabId();
  const dir = await runFolder(opts.runsDir, labId);
  const connections = new Connections(() => 0);
  const session = new LabSession({
    backend: opts.backend, labId, dir, capture: CAPTURE_POINTS, traceResets: opts.traceResets, signal: opts.signal,
    onEvent: (host, e) => connections.onEvent(host, e),
  });
  let tracer: RuleTracer | undefined;
  try {
    const lab = await session.up();
    const localPorts = rowPorts(ex.rows, lab.ports.min);
    const loaded = await session.guard(withDeadline(applyRuleset(lab, 'firewall', ruleset), STEP_MS, `loading the ruleset ${ruleset.file}`));
    if (opts.rules6) await session.guard(withDeadline(applyRuleset(lab, 'firewall', opts.rules6), STEP_MS, `loading the ruleset ${opts.rules6.file}`));
    await session.setSysctls(ex.sysctls, ex.file);
    const used = [...localPorts.values()];
    const started = opts.traceRules ? await session.guard(startRuleTrace(lab, ruleModel(ruleset.format, ruleset.text), loaded, { min: Math.min(...used), max: Math.max(...used) })) : undefined;
    if (typeof started === 'object') tracer = started;
    await listenForRows(session, ex);
    await session.recording();

    await session.guard(Promise.all(ex.rows.map((r) => runRow(r, localPorts.get(r.index)!, session.agents, connections, opts.dropWaitMs))));
    const { kernelResets, alongside: traced } = await session.finish(async () => tracer?.stop());
    const ruleTrace = traced ?? (typeof started === 'string' ? started : undefined);
    const obs: Observations = { ...(await session.decode()), conns: connections.conns, counters: {}, snapshots: {}, ...(kernelResets ? { kernelResets } : {}) };
    return { labId, backend: opts.backend.name, dir, localPorts, obs, seconds: (performance.now() - start) / 1000, ...(ruleTrace !== undefined ? { ruleTrace } : {}), ...(opts.rules6 ? { rules6: opts.rules6.file } : {}) };
  } catch (e) {
    throw await session.failure(e);
  } finally {
    tracer?.kill();
    await session.down();
  }
}

/** The side a row connects to listens on its port, except where the row expects that side's
 * kernel to reset it (expectations.ts checks that no port needs both). */
export async function listenForRows(session: LabSession, ex: Expectations): Promise<void> {
  const listen = new Map<string, { host: 'client' | 'server'; port: number }>();
  for (const r of ex.rows) {
    const closed = ex.rows.some((o) => o.to === r.to && o.port === r.port && o.expect === 'reset-by-server');
    if (!closed || needsListener(r)) listen.set(`${r.to} ${r.port}`, { host: r.to, port: r.port });
  }
  await session.guard(Promise.all([...listen.values()].map(({ host, port }) => session.listen(host, { listener: `port${port}`, port, accept: true, read: true }))));
}

/**
 * One row: connect from the row's own port and wait for an answer, at most the drop wait
 * (a dropped SYN would otherwise be retried for minutes: tcp_syn_retries). An idle row then
 * stays silent, sends a byte and waits again. Whatever happened, the socket is closed
 * (a socket still in SYN-SENT goes without a word); the captures say what happened.
 */
export async function runRow(r: PlannedRow, localPort: number, agents: Record<Host, AgentClient>, connections: Connections, dropWaitMs: number, id = `row${r.index}`): Promise<void> {
  const agent = agents[r.from];
  const saw = (host: 'client' | 'server', ...events: string[]) => () => connections.endOf(id, host)?.events.some((e) => events.includes(e.event)) ?? false;
  connections.connect(id, r.from, r.port);
  connections.setLocalPort(id, localPort);
  await agent.request({ cmd: 'connect', conn: id, address: addressOf(r.to, r.family), port: r.port, localPort, wait: false });
  await connections.until(saw(r.from, 'connected', 'error'), dropWaitMs);
  const connected = saw(r.from, 'connected')();
  if (connected && r.idleMs !== undefined) {
    await delay(r.idleMs);
    await agent.request({ cmd: 'send', conn: id, bytes: 1 });
    // the data arrived (the other end read it), or the sender heard of a failure
    await connections.until(() => saw(r.to, 'data')() || saw(r.from, 'error')(), dropWaitMs);
  }
  await agent.request({ cmd: 'close', conn: id, how: 'destroy' }).catch(() => undefined);
}
