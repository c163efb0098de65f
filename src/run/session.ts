// A lab for the length of one run, from up to down, shared by scenario runs (runner.ts) and
// firewall-test matrices (firewall/matrix.ts): the lab's hosts with an agent each, tcpdump at
// the capture points and the kernel's reset trace; every wait abortable by one signal (Ctrl-C,
// or the lab breaking under the run: an agent that ends or breaks its protocol); and a
// teardown that always runs, each part of it bounded, so that the lab always comes down.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { AgentClient, REQUEST_MS } from '../agent/client.js';
import type { AgentEvent } from '../agent/protocol.js';
import { startCapture, type Capture } from '../capture/capture.js';
import { decodeCaptureFileWithIcmp } from '../capture/pcap.js';
import { readCapture } from '../capture/contents.js';
import { startKernelResetTrace, type KernelResetTrace } from '../capture/kernel-resets.js';
import { abortable, InputError, LabError, withDeadline } from '../errors.js';
import type { Backend, Lab } from '../lab/backend.js';
import { HOSTS, type CapturePoint, type Host, type HostName, type KernelReset, type Observations } from '../vocabulary.js';
import { classify } from './deadlines.js';

/** Time for the last packets to cross the lab after the last step (veth latency is µs; the
 * rest is margin for tcpdump to be scheduled on a busy machine). */
const SETTLE_MS = 50;
/** How long each part of the teardown may take. */
const TEARDOWN_MS = 5_000;

export interface SessionOptions {
  backend: Backend;
  labId: string;
  /** the run's folder: the pcaps go there, one per capture point */
  dir: string;
  capture: readonly CapturePoint[];
  /** record the kernel's reason for each RST from tracefs, where the machine allows it */
  traceResets?: boolean;
  /** aborted on SIGINT/SIGTERM: the run stops where it is and the lab comes down */
  signal?: AbortSignal;
  /** what the applications saw, as the agents report it */
  onEvent(host: HostName, e: AgentEvent): void;
  /** a kept lab to run in (rstlab run --lab): neither built nor taken down */
  lab?: Lab;
  /** the lab holds an impostor on the server's network; ARP is captured and decoded */
  impostor?: boolean;
}

export class LabSession {
  readonly agents = {} as Record<Host, AgentClient>;
  /** the kernel's names of the lab's listening sockets, with when each was the lab's, to
   * tell its listeners' RSTs from other labs' (capture/kernel-resets.ts) */
  private readonly listeners = new Map<string, { from: number; to?: number; host: Host; name: string }[]>();
  private labUp?: Promise<Lab>;
  private labValue?: Lab;
  // Kept from their start, so that captures and a trace instance still being made when the
  // run ends are stopped and removed too.
  private capturing?: Promise<Capture[]>;
  private captures: Capture[] = [];
  private traceStart?: Promise<KernelResetTrace | undefined>;
  private readonly stop = new AbortController();
  // (the signal's own reason goes on: a signal name means Ctrl-C, exit 130, not a broken lab)
  private readonly onSignal = () => this.stop.abort(this.opts.signal?.reason);

  constructor(private readonly opts: SessionOptions) {
    if (opts.signal?.aborted) this.stop.abort(opts.signal.reason);
    opts.signal?.addEventListener('abort', this.onSignal, { once: true });
  }

  /** Aborted on Ctrl-C or when the lab breaks under the run. */
  get signal(): AbortSignal {
    return this.stop.signal;
  }

  get lab(): Lab {
    if (!this.labValue) throw new Error('the lab is not up yet');
    return this.labValue;
  }

  /** `p`, or AbortedError / the lab's failure as soon as the run is stopped. */
  guard<T>(p: Promise<T>): Promise<T> {
    return abortable(p, this.stop.signal);
  }

  /** Bring the lab up and its agents ready. Captures and the reset trace need only the lab's
   * hosts: they start while the agents do (a Node start each, most of lab up); nothing is
   * sent before the first step. */
  async up(): Promise<Lab> {
    this.labUp = this.opts.lab ? Promise.resolve(this.opts.lab) : this.opts.backend.up(this.opts.labId, { impostor: this.opts.impostor ?? false });
    const lab = (this.labValue = await this.guard(this.labUp));
    const agentOpts = { onEvent: this.opts.onEvent, onFailure: (e: Error) => this.stop.abort(e) };
    for (const h of HOSTS) this.agents[h] = AgentClient.start(lab, h, agentOpts);
    this.capturing = Promise.all(this.opts.capture.map((p) => startCapture(lab, p, join(this.opts.dir, `${p}.pcap`), undefined, { arp: this.opts.impostor ?? false })));
    this.capturing.catch(() => undefined); // awaited in recording(); not unhandled meanwhile
    if (this.opts.traceResets) {
      this.traceStart = startKernelResetTrace(this.opts.labId, lab.ports);
      this.traceStart.catch(() => undefined);
    }
    await this.guard(Promise.all(HOSTS.map((h) => this.agents[h].ready)));
    return lab;
  }

  /** Each host's sysctls. net.netfilter.* exist only once nf_conntrack is loaded in the host:
   * asking for its conntrack table (ctnetlink) loads it where no rule did. One the kernel
   * refuses is bad input, located in `file`. */
  async setSysctls(sysctls: Partial<Record<Host, Record<string, string | number>>>, file: string): Promise<void> {
    const all = Object.entries(sysctls) as [Host, Record<string, string | number>][];
    const conntrack = all.filter(([, s]) => Object.keys(s).some((n) => n.startsWith('net.netfilter.')));
    await this.guard(Promise.all(conntrack.map(([h]) => withDeadline(this.lab.exec(h, ['conntrack', '-L']), REQUEST_MS, `conntrack -L in ${h}`))));
    await this.guard(Promise.all(all.flatMap(([host, s]) => Object.entries(s).map(([name, value]) => setSysctl(this.agents[host], name, value, file)))));
  }

  /** Open a listener in a host; its socket is remembered as the lab's from now on. */
  async listen(host: Host, req: { listener: string; port: number; backlog?: number; accept: boolean; read: boolean }, answerMs?: number): Promise<void> {
    const from = Date.now() / 1000;
    const reply = await this.agents[host].request({ cmd: 'listen', ...req }, answerMs);
    for (const s of reply.listenerSockets ?? []) this.listeners.set(s, [...(this.listeners.get(s) ?? []), { from, host, name: req.listener }]);
  }

  /** Close a listener; its socket is the lab's no more once the close is answered. */
  async stopListener(host: Host, name: string, answerMs?: number): Promise<void> {
    await this.agents[host].request({ cmd: 'stopListener', listener: name }, answerMs);
    const to = Date.now() / 1000;
    for (const lifetimes of this.listeners.values()) for (const l of lifetimes) if (l.host === host && l.name === name && l.to === undefined) l.to = to;
  }

  /** Wait until every capture point (and the trace) is recording. */
  async recording(): Promise<void> {
    this.captures = await this.guard(this.capturing ?? Promise.resolve([]));
    if (this.traceStart) await this.guard(withDeadline(this.traceStart, REQUEST_MS, 'the kernel reset trace to start'));
  }

  /** After the last step: let the last packets cross the lab, then stop recording, all at
   * once: the captures drained, the kernel's reasons read, and `alongside` (the counters). */
  async finish<T>(alongside: () => Promise<T>): Promise<{ kernelResets?: KernelReset[]; alongside: T }> {
    await this.guard(delay(SETTLE_MS));
    const stopping = this.captures;
    this.captures = [];
    const trace = await this.traceStart;
    const [, kernelResets, result] = await this.guard(Promise.all([
      Promise.all(stopping.map(async (c) => {
        await c.drain();
        await c.stop();
      })),
      trace ? withDeadline(trace.stop(this.listeners), REQUEST_MS, 'the kernel reset trace to stop') : undefined,
      alongside(),
    ]));
    return { ...(kernelResets ? { kernelResets } : {}), alongside: result };
  }

  /** The TCP segments and ICMP errors each capture point recorded (with an impostor: ARP and source MACs too). */
  async decode(): Promise<Pick<Observations, 'packets' | 'arps'> & { icmp: NonNullable<Observations['icmp']> }> {
    const packets: Observations['packets'] = {};
    const icmp: NonNullable<Observations['icmp']> = {};
    const arps: NonNullable<Observations['arps']> = {};
    for (const p of this.opts.capture) {
      const file = join(this.opts.dir, `${p}.pcap`);
      if (this.opts.impostor) ({ packets: packets[p], icmp: icmp[p], arps: arps[p] } = readCapture(await readFile(file)));
      else ({ tcp: packets[p], icmp: icmp[p] } = await decodeCaptureFileWithIcmp(file));
    }
    return { packets, icmp, ...(this.opts.impostor ? { arps } : {}) };
  }

  /** What an error of the run becomes: AbortedError, the lab broken or gone (exit 3), or itself. */
  failure(e: unknown): Promise<unknown> {
    return classify(e, this.labValue, this.stop.signal);
  }

  /** Take everything down, whatever state the run is in. */
  async down(): Promise<void> {
    this.opts.signal?.removeEventListener('abort', this.onSignal);
    const bounded = <T>(p: Promise<T> | undefined, what: string): Promise<T | undefined> | undefined =>
      p ? withDeadline(p, TEARDOWN_MS, what).catch(() => undefined) : undefined;
    const trace = await bounded(this.traceStart, 'the kernel reset trace to start');
    // removing the trace instance waits for the kernel: it runs beside the rest of the teardown
    const removing = bounded(trace?.remove(), 'the kernel reset trace to be removed');
    if (this.captures.length === 0 && this.capturing) this.captures = (await bounded(this.capturing, 'the captures to start')) ?? [];
    await Promise.all([...this.captures.map((c) => c.stop().catch(() => undefined)), ...Object.values(this.agents).map((a) => a.stop())]);
    this.captures = [];
    const lab = this.labValue ?? (await this.labUp?.catch(() => undefined));
    // a kept lab stays up: only rstlab lab down removes it
    await Promise.all([this.opts.lab ? undefined : lab?.down(), removing]);
  }
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
