// tcpdump on one capture point, pcap streamed back over stdout into the run's folder.
import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import type { Lab } from '../lab/backend.js';
import { DeadlineError, LabBrokeError, withDeadline } from '../errors.js';
import { CAPTURE_INTERFACE, type CapturePoint } from '../vocabulary.js';

/** What every capture point records: TCP, and the ICMP errors about it. ICMPv6 errors are
 * types 0-127 (RFC 4443 §2.1); neighbour discovery (133-137) and the rest of ICMPv6's
 * informational messages are not lab traffic, and stay out of the pcaps, ladders and verdicts. */
export const CAPTURE_FILTER = 'tcp or icmp or (icmp6 and ip6[40] < 128)';

export interface Capture {
  readonly point: CapturePoint;
  readonly file: string;
  /** Wait until tcpdump has handled every packet the kernel handed it (see drain below). */
  drain(): Promise<void>;
  /** Stop capturing and wait until every packet tcpdump had is in the file. */
  stop(): Promise<void>;
}

/** How long a capture may take to catch up with the kernel at the end of a run. */
const DRAIN_MS = 2_000;
/** tcpdump's answer to SIGUSR1 (tcpdump.c info()): its own count and the kernel's. */
const STATS = /(\d+) packets? captured, (\d+) packets? received by filter/g;

/** tcpdump says "listening on" within tens of ms; 5 s is a machine in trouble. */
export const CAPTURE_READY_MS = 5_000;

/** The capture program: tcpdump from the lab host's PATH, or the program RSTLAB_TCPDUMP
 * names (a path as the lab host sees it: on netns, the machine's own file system). */
export function tcpdumpProgram(env: NodeJS.ProcessEnv = process.env): string {
  return env.RSTLAB_TCPDUMP || 'tcpdump';
}

/** Start tcpdump and resolve once it is really capturing (it says "listening on" after
 * the capture socket is bound and the filter attached). */
export async function startCapture(lab: Lab, point: CapturePoint, file: string, readyMs = CAPTURE_READY_MS, opts: { arp?: boolean } = {}): Promise<Capture> {
  // ARP too where the lab has an impostor: who claims which address is the evidence there.
  const filter = opts.arp ? `${CAPTURE_FILTER} or arp` : CAPTURE_FILTER;
  const { host, iface } = CAPTURE_INTERFACE[point];
  // --immediate-mode -U: hand over each packet at once (without it the pcaps came out
  // empty here); -Z root: do not drop privileges, the output is a pipe anyway. ICMP too:
  // a firewall's REJECT may answer with an ICMP error, which the application cannot tell
  // from a RST (both are ECONNREFUSED), only the capture can.
  const proc = lab.spawn(host, [tcpdumpProgram(), '-i', iface, '-nn', '-s', '256', '--immediate-mode', '-U', '-Z', 'root', '-w', '-', filter]);
  const out = createWriteStream(file);
  proc.stdout.pipe(out);
  const written = finished(out);
  let stderr = '';
  let statsSeen = 0;
  const listening = new Promise<void>((resolve, reject) => {
    proc.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-4000);
      statsSeen++;
      if (stderr.includes('listening on')) resolve();
    });
    void proc.exited.then(({ code, signal }) =>
      reject(new LabBrokeError(`tcpdump on capture point ${point} ended before capturing (${signal ?? `exit ${code}`}): ${stderr.trim() || 'no output'}`)),
    );
  });
  try {
    await withDeadline(listening, readyMs, `tcpdump on capture point ${point} to report "listening on"`);
  } catch (e) {
    proc.kill('SIGKILL');
    await proc.exited;
    if (e instanceof DeadlineError) {
      throw new LabBrokeError(`tcpdump on capture point ${point} (${host} ${iface}) did not report "listening on" within ${readyMs} ms${stderr.trim() ? `: ${stderr.trim()}` : ''}`);
    }
    throw e;
  }
  let ended = false;
  void proc.exited.then(() => (ended = true));
  /** The last stats line tcpdump printed: [captured, received by filter]. */
  const lastStats = (): [number, number] | undefined => {
    const all = [...stderr.matchAll(STATS)];
    const m = all[all.length - 1];
    return m ? [Number(m[1]), Number(m[2])] : undefined;
  };
  return {
    point,
    file,
    // A packet the kernel has put in tcpdump's ring but tcpdump has not read yet is lost when
    // SIGINT ends it: on a busy machine tcpdump may not have run for tens of ms, and the last
    // packet of a run (often the RST) is the one at stake. tcpdump prints its own count and
    // the kernel's on SIGUSR1; when they agree, it has everything. Bounded: on a machine
    // where they never agree (loopback counts each packet twice), the run goes on.
    async drain() {
      const end = Date.now() + DRAIN_MS;
      while (Date.now() < end && !ended) {
        const before = statsSeen;
        proc.kill('SIGUSR1');
        while (statsSeen === before && Date.now() < end && !ended) await new Promise((r) => setTimeout(r, 2));
        const stats = lastStats();
        if (!stats || stats[0] >= stats[1]) return;
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    async stop() {
      // SIGINT: tcpdump flushes what it has and exits 0
      proc.kill('SIGINT');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 2000);
      await proc.exited;
      clearTimeout(timer);
      // the pipe closes with the process; the file is flushed soon after
      await withDeadline(written, 5_000, `the pcap of ${point} to be written`);
    },
  };
}
