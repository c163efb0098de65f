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
// Not attributable: a RST sent for a listener (a full accept queue, an ACK for no
// connection) carries the listener's own address and port ([::]:8080 → [::]:0), not the
// flow's, and every lab listens on the same ports. Such events are kept; the verifier
// pairs them with the lab's RSTs by time, so two labs sending listener RSTs within the
// same moment could swap those reasons.
import { mkdir, readFile, rmdir, writeFile, access, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { LAB_PREFIX } from '../lab/backend.js';
import type { PortRange } from '../lab/owner.js';
import { hasCapabilities, run } from '../lab/process.js';
import type { KernelReset } from '../vocabulary.js';

const TRACEFS = '/sys/kernel/tracing';

export interface KernelResetTrace {
  stop(): Promise<KernelReset[]>;
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
    let stopped = false;
    return {
      async stop() {
        if (stopped) return [];
        stopped = true;
        try {
          await writeFile(join(dir, 'events/tcp/tcp_send_reset/enable'), '0');
          return parseTrace(await readFile(join(dir, 'trace'), 'utf8'), markedAt).filter((k) => inPortRange(k, ports));
        } finally {
          await rmdir(dir).catch(() => undefined);
        }
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
const EVENT = new RegExp(String.raw`\s(\d+\.\d+): tcp_send_reset: .*src=${ADDR} dest=${ADDR} state=(\w+) reason=(\w+)`);
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
      saddr: m[2]!, sport: Number(m[3]), daddr: m[4]!, dport: Number(m[5]),
      state: m[6]!.replace(/^TCP_/, ''), reason: m[7]!,
    });
  }
  return out;
}

/** Whether a reset can be the lab's, the one with this port range (see the top of this file):
 * one of its ports is the lab's, or it is a listener's (no peer port) and cannot be told apart. */
export function inPortRange(k: Pick<KernelReset, 'sport' | 'dport'>, ports: PortRange): boolean {
  const ours = (p: number) => p >= ports.min && p <= ports.max;
  return ours(k.sport) || ours(k.dport) || k.dport === 0;
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
