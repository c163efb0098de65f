// What a run leaves for teaching, beside report.json: all.pcapng always, report.html when asked.
import type { RunResult } from '../run/runner.js';
import { writeAllPcapng } from './all-pcapng.js';
import { writeReportHtml } from './html.js';

export interface ArtifactOptions {
  html?: boolean;
  absoluteSeq?: boolean;
  mystery?: boolean;
}

export async function writeTeachingArtifacts(r: RunResult, opts: ArtifactOptions): Promise<void> {
  await writeAllPcapng(r, { mystery: opts.mystery });
  if (opts.html) await writeReportHtml(r, { absoluteSeq: opts.absoluteSeq, mystery: opts.mystery });
}
