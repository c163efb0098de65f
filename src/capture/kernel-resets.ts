// The kernel's own reason for each RST it sends, from the tcp:tcp_send_reset tracepoint
// (include/trace/events/tcp.h). Netfilter REJECTs never pass through it: a RST in the
// capture without an event here was not made by a TCP socket.
import { mkdir, readFile, rmdir, writeFile, access, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { LAB_PREFIX } from '../lab/backend.js';
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
export async function startKernelResetTrace(labId: string): Promise<KernelResetTrace | undefined> {
  if (!hasCapabilities('SYS_ADMIN') || !(await tracefsReady())) return undefined;
  const dir = join(TRACEFS, 'instances', `${LAB_PREFIX}${labId}`);
  try {
    await mkdir(dir);
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
          return parseTrace(await readFile(join(dir, 'trace'), 'utf8'), markedAt);
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

/** Remove tracing instances that killed runs left behind. */
export async function cleanupTraceInstances(): Promise<string[]> {
  try {
    const names = (await readdir(join(TRACEFS, 'instances'))).filter((n) => n.startsWith(LAB_PREFIX));
    for (const n of names) await rmdir(join(TRACEFS, 'instances', n)).catch(() => undefined);
    return names.map((n) => `tracing instance ${n}`);
  } catch {
    return [];
  }
}
