// Running a firewall-test matrix: one lab, the ruleset loaded into its firewall host, every
// row's connection at once (each from a client port of its own, so each has its own
// 4-tuple), captures at the four points, and the lab down on every path. The rows are then
// judged from the captures (judge.ts), never from what the sockets said.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { AgentClient, REQUEST_MS } from '../agent/client.js';
import type { AgentEvent } from '../agent/protocol.js';
import { startCapture, type Capture } from '../capture/capture.js';
import { decodeCaptureFileWithIcmp } from '../capture/pcap.js';
import { startKernelResetTrace, type KernelResetTrace } from '../capture/kernel-resets.js';
import { abortable, withDeadline } from '../errors.js';
import { newLabId, type Backend, type Lab } from '../lab/backend.js';
import { classify, STEP_MS } from '../run/deadlines.js';
import { makeFolder } from '../run/preflight.js';
import { Connections, setHostSysctls } from '../run/runner.js';
import { ADDRESS, CAPTURE_POINTS, HOSTS, type Host, type HostName, type Observations } from '../vocabulary.js';
import { needsListener, type Expectations, type PlannedRow } from './expectations.js';
import { applyRuleset, type Ruleset } from './ruleset.js';

/** Time for the last packets to cross the lab after the last row (veth latency is µs). */
const SETTLE_MS = 50;

export interface MatrixOptions {
  backend: Backend;
  runsDir: string;
  /** how long a row waits for any answer before it is judged (drop) */
  dropWaitMs: number;
  signal?: AbortSignal;
  traceResets?: boolean;
}

export interface MatrixRun {
  labId: string;
  backend: string;
  dir: string;
  /** each row's local port, by row index */
  localPorts: Map<number, number>;
  obs: Observations;
  seconds: number;
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

async function runFolder(runsDir: string, labId: string): Promise<string> {
  await makeFolder(runsDir, '--runs-dir');
  const time = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const dir = join(runsDir, `${time}-firewall-test-${labId}`);
  await mkdir(dir);
  return dir;
}

export async function runMatrix(ruleset: Ruleset, ex: Expectations, opts: MatrixOptions): Promise<MatrixRun> {
  const start = performance.now();
  const labId = newLabId();
  const dir = await runFolder(opts.runsDir, labId);
  let localPorts = new Map<number, number>();
  const connections = new Connections(() => 0);
  let lab: Lab | undefined;
  let labUp: Promise<Lab> | undefined;
  const agents = {} as Record<Host, AgentClient>;
  let captures: Capture[] = [];
  let trace: KernelResetTrace | undefined;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  if (opts.signal?.aborted) stop.abort();
  opts.signal?.addEventListener('abort', onSignal, { once: true });
  const guard = <T>(p: Promise<T>) => abortable(p, stop.signal);
  try {
    labUp = opts.backend.up(labId);
    lab = await guard(labUp);
    localPorts = rowPorts(ex.rows, lab.ports.min);
    const agentOpts = { onEvent: (host: HostName, e: AgentEvent) => connections.onEvent(host, e), onFailure: (e: Error) => stop.abort(e) };
    for (const h of HOSTS) agents[h] = AgentClient.start(lab, h, agentOpts);
    await guard(Promise.all(HOSTS.map((h) => agents[h].ready)));

    await guard(withDeadline(applyRuleset(lab, 'firewall', ruleset), STEP_MS, `loading the ruleset ${ruleset.file}`));
    await guard(setHostSysctls(lab, agents, ex.sysctls, ex.file));
    // The side a row connects to listens on its port, except where the row expects that
    // side's kernel to reset it (expectations.ts checks that no port needs both).
    const listen = new Map<string, { host: 'client' | 'server'; port: number }>();
    for (const r of ex.rows) {
      const closed = ex.rows.some((o) => o.to === r.to && o.port === r.port && o.expect === 'reset-by-server');
      if (!closed || needsListener(r)) listen.set(`${r.to} ${r.port}`, { host: r.to, port: r.port });
    }
    const listening = await guard(Promise.all([...listen.values()].map(({ host, port }) => agents[host].request({ cmd: 'listen', listener: `port${port}`, port, accept: true, read: true }))));
    const listenerSockets = new Set(listening.flatMap((r) => r.listenerSockets ?? []));

    captures = await guard(Promise.all(CAPTURE_POINTS.map((p) => startCapture(lab!, p, join(dir, `${p}.pcap`)))));
    if (opts.traceResets) trace = await guard(withDeadline(startKernelResetTrace(labId, lab.ports), REQUEST_MS, 'the kernel reset trace to start'));

    await guard(Promise.all(ex.rows.map((r) => runRow(r, localPorts.get(r.index)!, agents, connections, opts.dropWaitMs))));
    await guard(delay(SETTLE_MS));
    const stopping = captures;
    captures = [];
    await guard(Promise.all(stopping.map((c) => c.stop())));
    const tracing = trace;
    trace = undefined;
    const kernelResets = tracing ? await guard(withDeadline(tracing.stop(listenerSockets), REQUEST_MS, 'the kernel reset trace to stop')) : undefined;

    const packets: Observations['packets'] = {};
    const icmp: NonNullable<Observations['icmp']> = {};
    for (const p of CAPTURE_POINTS) ({ tcp: packets[p], icmp: icmp[p] } = await decodeCaptureFileWithIcmp(join(dir, `${p}.pcap`)));
    const obs: Observations = { packets, icmp, conns: connections.conns, counters: {}, snapshots: {}, ...(kernelResets ? { kernelResets } : {}) };
    return { labId, backend: opts.backend.name, dir, localPorts, obs, seconds: (performance.now() - start) / 1000 };
  } catch (e) {
    throw await classify(e, lab, stop.signal);
  } finally {
    opts.signal?.removeEventListener('abort', onSignal);
    await trace?.remove().catch(() => undefined);
    await Promise.all(captures.map((c) => c.stop().catch(() => undefined)));
    await Promise.all(Object.values(agents).map((a) => a.stop()));
    lab ??= await labUp?.catch(() => undefined);
    await lab?.down();
  }
}

/**
 * One row: connect from the row's own port and wait for an answer, at most the drop wait
 * (a dropped SYN would otherwise be retried for minutes: tcp_syn_retries). An idle row then
 * stays silent, sends a byte and waits again. Whatever happened, the socket is closed
 * (a socket still in SYN-SENT goes without a word); the captures say what happened.
 */
async function runRow(r: PlannedRow, localPort: number, agents: Record<Host, AgentClient>, connections: Connections, dropWaitMs: number): Promise<void> {
  const id = `row${r.index}`;
  const agent = agents[r.from];
  const saw = (host: 'client' | 'server', ...events: string[]) => () => connections.endOf(id, host)?.events.some((e) => events.includes(e.event)) ?? false;
  connections.connect(id, r.from, r.port);
  connections.setLocalPort(id, localPort);
  await agent.request({ cmd: 'connect', conn: id, address: ADDRESS[r.to], port: r.port, localPort, wait: false });
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
