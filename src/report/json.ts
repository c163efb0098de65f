// The machine-readable reports: report.json of one run, JUnit XML of one or many runs.
import { rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { endpointText, flagString } from '../vocabulary.js';
import type { RunResult } from '../run/runner.js';

export function reportJson(r: RunResult) {
  return {
    scenario: r.plan.name,
    variant: r.plan.variant,
    expectOf: r.plan.expectOf,
    family: r.plan.family,
    file: r.plan.file,
    backend: r.backend,
    labId: r.labId,
    dir: r.dir,
    passed: r.verdict.passed,
    timings: r.timings,
    results: r.verdict.results.map(({ context: _context, ...rest }) => rest),
    rsts: r.verdict.rsts.map((s) => ({
      id: s.id, from: s.from, ipSource: s.ipSource, to: s.to, conn: s.conn, flags: s.flagText,
      src: endpointText(s.src, s.sport), dst: endpointText(s.dst, s.dport), seq: s.seq, ack: s.ack,
      seenAt: Object.fromEntries(s.seenAt.map((p) => [p, { ttl: s.seen[p]?.ttl }])),
      answered: s.answered ? flagString(s.answered.packet.flags) : undefined,
      reason: s.reason,
    })),
    conns: r.obs.conns,
    counters: Object.fromEntries(
      Object.entries(r.obs.counters).map(([host, c]) => [
        host,
        Object.fromEntries(Object.keys(c!.after).filter((k) => c!.after[k] !== c!.before[k]).map((k) => [k, c!.after[k]! - (c!.before[k] ?? 0)])),
      ]),
    ),
    kernelResets: r.obs.kernelResets,
    pcaps: Object.fromEntries(r.plan.capture.map((p) => [p, join(r.dir, `${p}.pcap`)])),
  };
}

/** Write a file whole or not at all: a reader (a CI step, a second run) never sees half
 * of it, even if this process is killed while writing. rename(2) within one folder is atomic. */
export async function writeFileAtomically(file: string, text: string): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, text);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

export async function writeReportJson(r: RunResult): Promise<void> {
  await writeFileAtomically(join(r.dir, 'report.json'), JSON.stringify(reportJson(r), null, 2) + '\n');
}

const xml = (s: string) => s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);

/** One testcase per scenario run; failures carry the failed expectations. */
export function junitXml(runs: { name: string; variant: string; seconds: number; failure?: string; output?: string; skipped?: string }[]): string {
  const failures = runs.filter((r) => r.failure).length;
  const skips = runs.filter((r) => r.skipped !== undefined).length;
  const cases = runs.map((r) => {
    const head = `  <testcase classname="rstlab.${xml(r.name)}" name="${xml(r.variant)}" time="${r.seconds.toFixed(3)}"`;
    const out = r.output ? `\n    <system-out>${xml(r.output)}</system-out>` : '';
    if (r.skipped !== undefined) return `${head}>\n    <skipped message="${xml(r.skipped)}"/>\n  </testcase>`;
    return r.failure ? `${head}>\n    <failure message="expectations failed">${xml(r.failure)}</failure>${out}\n  </testcase>` : out ? `${head}>${out}\n  </testcase>` : `${head}/>`;
  });
  const total = runs.reduce((s, r) => s + r.seconds, 0);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="rstlab" tests="${runs.length}" failures="${failures}"${skips > 0 ? ` skipped="${skips}"` : ''} time="${total.toFixed(3)}">\n${cases.join('\n')}\n</testsuite>\n`;
}
