// `rstlab firewall-test --rules FILE --expect FILE`: read and check both files (nothing is
// built on bad input), run the matrix in one lab, judge each row from the captures, print
// the table (or JSON), write JUnit; exit 0 when every row matches, 1 when any differs.
import { writeFile } from 'node:fs/promises';
import { AbortedError, abortable, EXIT, InputError } from '../errors.js';
import { toolsFor } from '../lab/tools.js';
import { backendByName } from '../lab/backends.js';
import { checkOutputFile, checkRunsDir } from '../run/preflight.js';
import { loadExpectations } from './expectations.js';
import { judgeRow } from './judge.js';
import { runMatrix } from './matrix.js';
import { renderTable, junitFor, rowJson, type RowResult } from './report.js';
import { loadRuleset, RULESET_FORMATS, type RulesetFormat } from './ruleset.js';
import { durationMs } from './expect-schema.js';
import { familyWarnings, noteFamilies } from './families.js';
import { coverageJson, coverageOf, renderCoverage, traceRows, type Coverage, type RowTrace } from './coverage.js';
import { ruleModel } from './rules.js';
import { mutantsJson, mutantsOf, renderMutants, runMutants, type MutantReport } from './mutants.js';

export interface FirewallTestOptions {
  rules: string;
  /** the IPv6 half of an iptables ruleset: an ip6tables-save file */
  rules6?: string;
  expect: string;
  format?: string;
  junit?: string;
  json?: boolean;
  backend: string;
  dropWait: string;
  runsDir: string;
  trace: boolean;
  /** fail (exit 1) when fewer than this percent of the rules are reached by a row */
  minCoverage?: string;
  /** run the matrix against one-rule mutants of the ruleset */
  mutants?: boolean;
  jobs?: string;
}

/** Parallel labs for mutants: each mostly waits (drop waits, idle rows), so more labs than cores pay. */
export const MUTANT_JOBS_DEFAULT = 4;

/** The drop wait's default: a SYN that got no answer in a second on veth got none at all. */
export const DROP_WAIT_DEFAULT = '1s';

export async function firewallTestCommand(o: FirewallTestOptions, signal: AbortSignal): Promise<number> {
  if (o.format !== undefined && !(RULESET_FORMATS as readonly string[]).includes(o.format)) {
    throw new InputError(`--format ${o.format}: use ${RULESET_FORMATS.join(' or ')}`);
  }
  const dropWaitMs = durationMs(/^\d+(\.\d+)?$/.test(o.dropWait) ? Number(o.dropWait) : o.dropWait);
  if (dropWaitMs === undefined || dropWaitMs < 100 || dropWaitMs > 60_000) throw new InputError(`--drop-wait ${o.dropWait}: a duration from 100ms to 60s, e.g. 1s or 500ms`);
  const minCoverage = o.minCoverage === undefined ? undefined : Number(o.minCoverage.replace(/%$/, ''));
  if (minCoverage !== undefined && !(Number.isFinite(minCoverage) && minCoverage >= 0 && minCoverage <= 100 && o.minCoverage!.trim() !== '')) throw new InputError(`--min-coverage ${o.minCoverage}: a percentage from 0 to 100, e.g. 80`);
  const jobs = Number(o.jobs ?? MUTANT_JOBS_DEFAULT);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 16) throw new InputError(`--jobs ${o.jobs}: a whole number of labs from 1 to 16`);
  const ruleset = await loadRuleset(o.rules, o.format as RulesetFormat | undefined);
  if (o.rules6 !== undefined && ruleset.format === 'nftables') throw new InputError(`--rules6 is the IPv6 half of an iptables ruleset; ${o.rules} is an nft ruleset, whose inet or ip6 tables hold its IPv6 rules`);
  const rules6 = o.rules6 === undefined ? undefined : await loadRuleset(o.rules6, 'ip6tables');
  const model = ruleModel(ruleset.format, ruleset.text);
  const ex = await loadExpectations(o.expect);
  for (const w of familyWarnings(ruleset, rules6, ex)) process.stderr.write(`rstlab: warning: ${w}\n`);
  await checkRunsDir(o.runsDir);
  if (o.junit) await checkOutputFile(o.junit, '--junit');
  const backend = await backendByName(o.backend);
  let run;
  try {
    await abortable(backend.check(toolsFor([{ sysctls: ex.sysctls, steps: [], firewallRuleset: ruleset }])), signal);
    run = await runMatrix(ruleset, ex, { backend, runsDir: o.runsDir, dropWaitMs, signal, traceResets: o.trace, traceRules: true, ...(rules6 ? { rules6 } : {}) });
  } catch (e) {
    if (e instanceof AbortedError) return EXIT.interrupted;
    throw e;
  }
  const judged = noteFamilies(ex.rows.map((row) => {
    const localPort = run.localPorts.get(row.index)!;
    return { row, localPort, judgement: judgeRow(row, localPort, run.obs, dropWaitMs) };
  }));
  // Which rule decided each row, and which rules the rows reach: from the rule trace, where there is one.
  let traces: Map<number, RowTrace> | undefined;
  let coverage: Coverage | undefined;
  if (typeof run.ruleTrace === 'string' || run.ruleTrace === undefined) {
    process.stderr.write(`rstlab: rule tracing is not available here (${run.ruleTrace ?? 'no trace'}): rows are judged without the deciding rule, and without coverage\n`);
  } else {
    for (const note of run.ruleTrace.notes) process.stderr.write(`rstlab: rule trace: ${note}\n`);
    traces = traceRows(model, ruleset.file, judged, run.ruleTrace);
    coverage = coverageOf(model, ex.rows, traces);
  }
  const results: RowResult[] = judged.map((r) => {
    const d = traces?.get(r.row.index)?.decidedBy;
    return d ? { ...r, decidedBy: d } : r;
  });
  const passed = results.every((r) => r.judgement.passed);
  let mutants: MutantReport | undefined;
  if (o.mutants) {
    const list = mutantsOf(model, ruleset);
    try {
      mutants = passed
        ? await runMutants(list, ruleset, ex, traces, { backend, runsDir: o.runsDir, dropWaitMs, signal, jobs, ...(rules6 ? { rules6 } : {}) })
        : { skipped: 'the matrix fails on the ruleset itself: make every row pass first, then test it with mutants', results: [], seconds: 0, labs: 0 };
    } catch (e) {
      if (e instanceof AbortedError) return EXIT.interrupted;
      throw e;
    }
  }
  if (o.junit) await writeFile(o.junit, junitFor(results, ruleset, ex, run));
  const belowMin = minCoverage !== undefined && coverage !== undefined && coverage.percent < minCoverage;
  if (o.json) {
    process.stdout.write(`${JSON.stringify({
      rows: results.map((r) => rowJson(r, run, ex)),
      ...(coverage ? coverageJson(ruleset.file, coverage) : {}),
      ...(mutants ? mutantsJson(ruleset.file, mutants) : {}),
    }, null, 2)}\n`);
  } else {
    const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
    process.stdout.write(`${renderTable(results, ruleset, ex, run, color)}\n`);
    if (coverage) process.stdout.write(`\n${renderCoverage(ruleset.file, coverage)}\n`);
    if (mutants) process.stdout.write(`\n${renderMutants(ruleset.file, mutants, model)}\n`);
  }
  if (minCoverage !== undefined && coverage === undefined) {
    process.stderr.write(`rstlab: --min-coverage ${minCoverage}: no coverage without a rule trace\n`);
    return EXIT.expectationFailed;
  }
  if (belowMin) process.stderr.write(`rstlab: coverage ${coverage!.percent.toFixed(0)}% (${coverage!.reached} of ${coverage!.total} rules) is below --min-coverage ${minCoverage}%\n`);
  return passed && !belowMin ? EXIT.ok : EXIT.expectationFailed;
}
