// What a run leaves for teaching, beside report.json: all.pcapng always, report.html when asked.
import type { RunResult } from '../run/runner.js';
import { writeAllPcapng } from './all-pcapng.js';

export interface ArtifactOptions {
  html?: boolean;
  absoluteSeq?: boolean;
  mystery?: boolean;
}

export async function writeTeachingArtifacts(r: RunResult, opts: ArtifactOptions): Promise<void> {
  await writeAllPcapng(r, { mystery: opts.mystery });
  // the HTML report's code is loaded only when asked for (a plain run starts faster)
  if (opts.html) await (await import('./html.js')).writeReportHtml(r, { absoluteSeq: opts.absoluteSeq, mystery: opts.mystery });
}
