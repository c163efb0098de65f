// The kernel's own reason for each RST it sends, from the tcp:tcp_send_reset tracepoint
// (include/trace/events/tcp.h). Netfilter REJECTs never pass through it: a RST in the
// capture without an event here was not made by a TCP socket.
//
// The tracepoint is host-wide: every lab's resets, and the host's own, reach every tracing
// instance, and every lab has the same addresses. What makes an event one lab's is its
// ports: each lab has an ephemeral port range of its own (lab/owner.ts), every connection
// in a lab has one end on a port of that range (listeners are below every range, and
// pinned ports are chosen from it), so an event is kept only if one of its ports is in
// the lab's range. Kernels up to 6.9 print sport/dport fields, and there the instance's
// event filter keeps other labs' events out of its buffer too; from 6.10 the event has
// only the sockaddr arrays, which ftrace cannot filter on, and the range check below is
// the only one. Packets (each capture is in one lab namespace) and counters (/proc/net
// of the lab host's own namespace) cannot come from another lab.
//
// A RST sent for a listener (a full accept queue, an ACK for no connection) carries the
// listener's own address and port ([::]:8080 → [::]:0), not the flow's, and every lab
// listens on the same ports. Such an event is the lab's when its skaddr is one of the
// lab's own listening sockets: the agents report, for each listener they open, the socket
// pointer /proc/net/tcp prints, which with kernel.kptr_restrict = 0 is hashed exactly as
// the tracepoint prints skaddr (checked here). Where kptr_restrict hides pointers from
// one of the two, listener events cannot be told apart and are kept (the verifier pairs
// them with the lab's RSTs by time). A socket's memory, and so its name, is reused once the
// socket is freed: another lab's listener may have had this lab's listener's name before it
// (and after it, once this lab closes it), so an event counts only within the lifetime of
// the lab's own listener: after its listen was asked for, before its close was answered.
import { mkdir, readFile, rmdir, writeFile, access, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { LAB_PREFIX } from '../lab/backend.js';
import type { PortRange } from '../lab/owner.js';
import { hasCapabilities, run } from '../lab/process.js';
import type { KernelReset } from '../vocabulary.js';

const TRACEFS = '/sys/kernel/tracing';

export interface KernelResetTrace {
  /** Stop recording; the lab's events: those on its ports, and its listeners' (by their
   * kernel socket names, as the agents reported them). */
  stop(listeners: ListenerSockets): Promise<KernelReset[]>;
  /** Remove the tracing instance (stopping it first if need be); idempotent. Apart from
   * stop(), because removing an instance waits for the kernel (~50 ms here): a run does
   * it while its lab comes down. */
  remove(): Promise<void>;
}

/** The lab's listening sockets by their kernel names, each with its lifetimes (epoch
 * seconds; `to` unset while it is open). */
export type ListenerSockets = ReadonlyMap<string, readonly { from: number; to?: number }[]>;

/** Whether /proc/net/tcp and the tracepoint name sockets alike (both hash the pointer). */
async function socketNamesComparable(): Promise<boolean> {
  return (await readFile('/proc/sys/kernel/kptr_restrict', 'utf8').catch(() => '')).trim() === '0';
}

async function tracefsReady(): Promise<boolean> {
  try {
    await access(join(TRACEFS, 'instances'));
    return true;
  } catch {
    // tracefs is not mounted: mounting it changes nothing of the host's network
    const r = await run('mount', ['-t', 'tracefs', 'nodev', TRACEFS]);
    return r.code === 0;
  }
}

/** Start recording into a tracing instance of the lab's own; undefined where tracefs cannot be had. */
export async function startKernelResetTrace(labId: string, ports: PortRange): Promise<KernelResetTrace | undefined> {
  if (!hasCapabilities('SYS_ADMIN') || !(await tracefsReady())) return undefined;
  const dir = join(TRACEFS, 'instances', `${LAB_PREFIX}${labId}`);
  try {
    await mkdir(dir);
    const event = join(dir, 'events/tcp/tcp_send_reset');
    if (/field:__u16 sport;/.test(await readFile(join(event, 'format'), 'utf8'))) {
      const inRange = (f: string) => `(${f} >= ${ports.min} && ${f} <= ${ports.max})`;
      await writeFile(join(event, 'filter'), `${inRange('sport')} || ${inRange('dport')} || dport == 0`);
    }
    // tai: a wall clock (TAI = UTC + leap seconds offset, 0 on a VM without NTP leap
    // data); a marker written now maps trace time to epoch time exactly.
    await writeFile(join(dir, 'trace_clock'), 'tai');
    await writeFile(join(dir, 'events/tcp/tcp_send_reset/enable'), '1');
    const markedAt = Date.now();
    await writeFile(join(dir, 'trace_marker'), 'rstlab-sync');
    const comparable = await socketNamesComparable();
    let stopped = false;
    let removing: Promise<void> | undefined;
    return {
      async stop(listeners) {
        if (stopped) return [];
        stopped = true;
        await writeFile(join(dir, 'events/tcp/tcp_send_reset/enable'), '0');
        return parseTrace(await readFile(join(dir, 'trace'), 'utf8'), markedAt).filter((k) => isTheLabs(k, ports, comparable ? listeners : undefined));
      },
      async remove() {
        removing ??= rmdir(dir).catch(() => undefined);
        await removing;
      },
    };
  } catch {
    await rmdir(dir).catch(() => undefined);
    return undefined;
  }
}

// Sockets of a dual-stack (::) listener print IPv6: [::ffff:10.0.2.2]:8080 for a flow, and
// [::]:8080 for the listener itself; the mapped prefix is dropped, so both compare as IPv4.
const ADDR = String.raw`\[?(?:::ffff:)?([\d.]+|[\da-f:]+)\]?:(\d+)`;
const EVENT = new RegExp(String.raw`\s(\d+\.\d+): tcp_send_reset: (?:.*?skaddr=(\w+) )?.*src=${ADDR} dest=${ADDR} state=(\w+) reason=(\w+)`);
const MARKER = /\s(\d+\.\d+): tracing_mark_write: rstlab-sync/;

export function parseTrace(text: string, markedAt: number): KernelReset[] {
  const marker = MARKER.exec(text);
  const offset = marker ? markedAt / 1000 - Number(marker[1]) : 0;
  const out: KernelReset[] = [];
  for (const line of text.split('\n')) {
    const m = EVENT.exec(line);
    if (!m) continue;
    out.push({
      time: Number(m[1]) + offset,
      ...(m[2] ? { socket: m[2] } : {}),
      saddr: m[3]!, sport: Number(m[4]), daddr: m[5]!, dport: Number(m[6]),
      state: m[7]!.replace(/^TCP_/, ''), reason: m[8]!,
    });
  }
  return out;
}

/** How far trace time (mapped through the marker) and the runner's clock may differ. */
const CLOCK_SLACK_S = 0.002;

/** Whether a reset is the lab's (see the top of this file): one of its ports is in the lab's
 * range, or it is a listener's (no peer port) from one of the lab's listening sockets while
 * that socket was the lab's; without comparable socket names (`listeners` undefined) a
 * listener's is kept. */
export function isTheLabs(k: Pick<KernelReset, 'sport' | 'dport' | 'socket' | 'time'>, ports: PortRange, listeners?: ListenerSockets): boolean {
  const ours = (p: number) => p >= ports.min && p <= ports.max;
  if (ours(k.sport) || ours(k.dport)) return true;
  if (k.dport !== 0) return false;
  if (listeners === undefined) return true;
  const lifetimes = k.socket === undefined ? undefined : listeners.get(k.socket);
  return lifetimes?.some((l) => k.time >= l.from - CLOCK_SLACK_S && (l.to === undefined || k.time <= l.to + CLOCK_SLACK_S)) ?? false;
}

/** The ids of the labs that have a tracing instance (rstlab-<id>). */
export async function traceInstances(): Promise<string[]> {
  try {
    return (await readdir(join(TRACEFS, 'instances'))).filter((n) => n.startsWith(LAB_PREFIX)).map((n) => n.slice(LAB_PREFIX.length));
  } catch {
    return [];
  }
}

/** Remove a lab's tracing instance (one that a killed run left behind); returns what it removed. */
export async function removeTraceInstance(labId: string): Promise<string[]> {
  const name = `${LAB_PREFIX}${labId}`;
  try {
    await rmdir(join(TRACEFS, 'instances', name));
    return [`tracing instance ${name}`];
  } catch {
    return [];
  }
}
