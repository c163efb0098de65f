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

export interface FirewallTestOptions {
  rules: string;
  expect: string;
  format?: string;
  junit?: string;
  json?: boolean;
  backend: string;
  dropWait: string;
  runsDir: string;
  trace: boolean;
}

/** The drop wait's default: a SYN that got no answer in a second on veth got none at all. */
export const DROP_WAIT_DEFAULT = '1s';

export async function firewallTestCommand(o: FirewallTestOptions, signal: AbortSignal): Promise<number> {
  if (o.format !== undefined && !(RULESET_FORMATS as readonly string[]).includes(o.format)) {
    throw new InputError(`--format ${o.format}: use ${RULESET_FORMATS.join(' or ')}`);
  }
  const dropWaitMs = durationMs(/^\d+(\.\d+)?$/.test(o.dropWait) ? Number(o.dropWait) : o.dropWait);
  if (dropWaitMs === undefined || dropWaitMs < 100 || dropWaitMs > 60_000) throw new InputError(`--drop-wait ${o.dropWait}: a duration from 100ms to 60s, e.g. 1s or 500ms`);
  const ruleset = await loadRuleset(o.rules, o.format as RulesetFormat | undefined);
  const ex = await loadExpectations(o.expect);
  await checkRunsDir(o.runsDir);
  if (o.junit) await checkOutputFile(o.junit, '--junit');
  const backend = await backendByName(o.backend);
  let run;
  try {
    await abortable(backend.check(toolsFor([{ sysctls: ex.sysctls, steps: [], firewallRuleset: ruleset }])), signal);
    run = await runMatrix(ruleset, ex, { backend, runsDir: o.runsDir, dropWaitMs, signal, traceResets: o.trace });
  } catch (e) {
    if (e instanceof AbortedError) return EXIT.interrupted;
    throw e;
  }
  const results: RowResult[] = ex.rows.map((row) => {
    const localPort = run.localPorts.get(row.index)!;
    return { row, localPort, judgement: judgeRow(row, localPort, run.obs, dropWaitMs) };
  });
  if (o.junit) await writeFile(o.junit, junitFor(results, ruleset, ex, run));
  if (o.json) process.stdout.write(`${JSON.stringify(results.map((r) => rowJson(r, run, ex)), null, 2)}\n`);
  else process.stdout.write(`${renderTable(results, ruleset, ex, run, process.stdout.isTTY === true && !process.env.NO_COLOR)}\n`);
  return results.every((r) => r.judgement.passed) ? EXIT.ok : EXIT.expectationFailed;
}
