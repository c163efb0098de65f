// tcpdump on one capture point, pcap streamed back over stdout into the run's folder.
import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import type { Lab } from '../lab/backend.js';
import { LabError } from '../errors.js';
import { CAPTURE_INTERFACE, type CapturePoint } from '../vocabulary.js';

export interface Capture {
  readonly point: CapturePoint;
  readonly file: string;
  /** Stop capturing and wait until every packet tcpdump had is in the file. */
  stop(): Promise<void>;
}

/** Start tcpdump and resolve once it is really capturing (it says "listening on" after
 * the capture socket is bound and the filter attached). */
export async function startCapture(lab: Lab, point: CapturePoint, file: string): Promise<Capture> {
  const { host, iface } = CAPTURE_INTERFACE[point];
  // --immediate-mode -U: hand over each packet at once (without it the pcaps came out
  // empty here); -Z root: do not drop privileges, the output is a pipe anyway.
  const proc = lab.spawn(host, ['tcpdump', '-i', iface, '-nn', '-s', '256', '--immediate-mode', '-U', '-Z', 'root', '-w', '-', 'tcp']);
  const out = createWriteStream(file);
  proc.stdout.pipe(out);
  const written = finished(out);
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    proc.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (stderr.includes('listening on')) resolve();
    });
    void proc.exited.then(({ code }) => reject(new LabError(`tcpdump on ${point} ended before capturing (exit ${code}): ${stderr.trim()}`)));
  });
  return {
    point,
    file,
    async stop() {
      // SIGINT: tcpdump flushes what it has and exits 0
      proc.kill('SIGINT');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 2000);
      await proc.exited;
      clearTimeout(timer);
      await written;
    },
  };
}
