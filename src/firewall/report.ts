// What firewall-test prints and writes: the truth table (row, expected, observed, evidence,
// ✔/✘) with a summary line in the manner of network-policy probes ("N wrong, M correct out
// of T"), one JSON object per row, and JUnit with one testcase per row (CI shows each row).
import { junitXml } from '../report/json.js';
import type { Judgement } from './judge.js';
import { mismatchText } from './judge.js';
import type { Expectations, PlannedRow } from './expectations.js';
import type { MatrixRun } from './matrix.js';
import type { Ruleset } from './ruleset.js';
import { decisionText, type Decision } from './coverage.js';

export interface RowResult {
  row: PlannedRow;
  localPort: number;
  judgement: Judgement;
  /** the rule (or chain policy) that decided the row's deciding packet, where traced */
  decidedBy?: Decision;
}

export function rowJson(r: RowResult, run: MatrixRun, ex: Expectations) {
  return {
    row: r.row.index,
    name: r.row.name,
    line: r.row.line,
    file: ex.file,
    from: r.row.from,
    port: r.row.port,
    family: r.row.family,
    localPort: r.localPort,
    ...(r.row.idleMs !== undefined ? { idleMs: r.row.idleMs } : {}),
    expected: r.row.expect,
    observed: r.judgement.observed,
    phase: r.judgement.phase,
    passed: r.judgement.passed,
    evidence: r.judgement.evidence,
    ...(r.judgement.familyNote ? { familyNote: r.judgement.familyNote } : {}),
    ...(r.decidedBy ? { decidedBy: { file: r.decidedBy.file, line: r.decidedBy.line ?? null, text: r.decidedBy.text, chainPath: r.decidedBy.path, policy: r.decidedBy.policy } } : {}),
    pcaps: run.dir,
  };
}

export function junitFor(results: RowResult[], ruleset: Ruleset, ex: Expectations, run: MatrixRun): string {
  const each = run.seconds / Math.max(1, results.length);
  return junitXml(
    results.map((r) => ({
      name: `firewall-test.${ruleset.file}`,
      variant: `row ${r.row.index}: ${r.row.name} → ${r.row.expect}`,
      seconds: each,
      failure: r.judgement.passed ? undefined : `${ex.file}:${r.row.line}: ${mismatchText(r.row, r.judgement)}${r.decidedBy ? `\ndecided by ${decisionText(r.decidedBy)}` : ''}\npcaps: ${run.dir}`,
      ...(r.decidedBy ? { output: `decided by ${decisionText(r.decidedBy)}` } : {}),
    })),
  );
}

const paint = (on: boolean, code: string) => (s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);

export function renderTable(results: RowResult[], ruleset: Ruleset, ex: Expectations, run: MatrixRun, color: boolean): string {
  const red = paint(color, '1;31');
  const green = paint(color, '1;32');
  const dim = paint(color, '2');
  const traced = results.some((r) => r.decidedBy);
  const head = ['row', 'expected', 'observed', '', ...(traced ? ['decided by'] : [])];
  const cells = results.map((r) => [
    `${r.row.index} ${r.row.name}`,
    r.row.expect,
    r.judgement.observed + (r.row.idleMs !== undefined && r.judgement.phase === 'connect' ? ' (handshake)' : ''),
    r.judgement.passed ? '✔' : '✘',
    ...(traced ? [r.decidedBy ? decisionText(r.decidedBy) : '(no rule traced)'] : []),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => x.padEnd(widths[i]!)).join('  ') + '  ';
  const out = [`firewall-test ${ruleset.file} (${ruleset.format})${run.rules6 ? ` + ${run.rules6} (ip6tables)` : ''} against ${ex.file}: lab ${run.labId} on ${run.backend}`, '', `${line(head)}evidence`, `${line(widths.map((w) => '-'.repeat(w)))}--------`];
  results.forEach((r, i) => {
    const cellsText = line(cells[i]!);
    out.push((r.judgement.passed ? cellsText.replace('✔', green('✔')) : red(cellsText)) + dim(r.judgement.evidence));
  });
  const wrong = results.filter((r) => !r.judgement.passed);
  if (wrong.length > 0) {
    out.push('', 'Rows that differ:');
    for (const r of wrong) out.push(red(`  ${ex.file}:${r.row.line}: row ${r.row.index} ${r.row.name}: ${mismatchText(r.row, r.judgement)}${r.decidedBy ? `; decided by ${decisionText(r.decidedBy)}` : ''}`));
  }
  out.push('', `${wrong.length} wrong, ${results.length - wrong.length} correct out of ${results.length} rows (${run.seconds.toFixed(2)} s)`, `pcaps: ${run.dir}`);
  out.push(wrong.length === 0 ? green('PASS') : red('FAIL'));
  return out.join('\n');
}
