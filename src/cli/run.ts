// `rstlab run`: one scenario with its report, or --all of them in a pool of labs with a
// summary table.
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { EXIT, InputError } from '../errors.js';
import { backendByName } from '../lab/backends.js';
import type { Backend } from '../lab/backend.js';
import { toolsFor } from '../lab/tools.js';
import { junitXml, reportJson, writeReportJson } from '../report/json.js';
import { renderRun } from '../report/text.js';
import { AbortedError, abortable, runScenario, type RunResult } from '../run/runner.js';
import { listScenarios, loadScenario } from '../scenario/load.js';
import { planFor, type Plan } from '../scenario/plan.js';

export interface RunCommandOptions {
  variant: string;
  expectOf?: string;
  backend: string;
  all?: boolean;
  jobs: number;
  json?: boolean;
  junit?: string;
  runsDir: string;
  trace: boolean;
}

/** Exit code of an interrupted run (128 + SIGINT), after the lab is down. */
export const EXIT_INTERRUPTED = 130;

export function scenariosDir(): string {
  return fileURLToPath(new URL('../../../scenarios/', import.meta.url));
}

export function scenarioFile(arg: string): string {
  if (arg.endsWith('.yaml') || arg.endsWith('.yml') || arg.includes('/')) return arg;
  const file = join(scenariosDir(), `${arg}.yaml`);
  if (!existsSync(file)) throw new InputError(`no scenario named "${arg}" (rstlab list shows them)`);
  return file;
}

function failureText(r: RunResult): string | undefined {
  const failed = r.verdict.results.filter((x) => !x.passed);
  if (failed.length === 0) return undefined;
  return failed.map((x) => `${r.plan.file}:${x.line} ${x.summary}${x.detail ? `\n${x.detail}` : ''}`).join('\n');
}

async function runAll(plans: Plan[], backend: Backend, opts: RunCommandOptions, signal: AbortSignal): Promise<RunResult[]> {
  const results: RunResult[] = new Array(plans.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < plans.length && !signal.aborted) {
      const i = next++;
      const plan = plans[i]!;
      const r = await runScenario(plan, { backend, runsDir: opts.runsDir, signal, traceResets: opts.trace });
      await writeReportJson(r);
      results[i] = r;
      done++;
      const verdict = r.verdict.passed ? 'PASS' : 'FAIL';
      if (plans.length > 1) process.stderr.write(`[${done}/${plans.length}] ${verdict} ${plan.name} ${plan.variant} (${(r.timings.total / 1000).toFixed(1)} s)\n`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.jobs, plans.length) }, worker));
  if (signal.aborted) throw new AbortedError();
  return results;
}

function summaryTable(results: RunResult[]): string {
  const rows = results.map((r) => {
    const senders = [...new Set(r.verdict.rsts.map((s) => (s.ipSource && s.ipSource !== s.from ? `${s.from} (as ${s.ipSource})` : s.from ?? '?')))];
    return [r.plan.name, r.plan.variant, r.verdict.passed ? 'PASS' : 'FAIL', senders.join(', ') || '-', `${(r.timings.total / 1000).toFixed(2)} s`];
  });
  const head = ['scenario', 'variant', 'verdict', 'RST sent by', 'time'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const passed = results.filter((r) => r.verdict.passed).length;
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), '', `${passed} passed, ${results.length - passed} failed`].join('\n');
}

export async function runCommand(scenario: string | undefined, opts: RunCommandOptions, signal: AbortSignal): Promise<number> {
  // Everything is read and checked before any lab is built.
  let plans: Plan[];
  if (opts.all) {
    const all = await listScenarios(scenariosDir());
    plans = all.flatMap((s) => s.variants.map((v) => planFor(s, v)));
  } else {
    plans = [planFor(await loadScenario(scenarioFile(scenario!)), opts.variant, opts.expectOf)];
  }
  const backend = await backendByName(opts.backend);
  let results: RunResult[];
  try {
    // check() may build the Docker image first: Ctrl-C must not wait for that
    await abortable(backend.check(toolsFor(plans)), signal);
    results = await runAll(plans, backend, opts, signal);
  } catch (e) {
    if (e instanceof AbortedError) return EXIT_INTERRUPTED;
    throw e;
  }

  if (opts.junit) {
    const runs = results.map((r) => ({ name: r.plan.name, variant: r.plan.variant, seconds: r.timings.total / 1000, failure: failureText(r) }));
    await writeFile(opts.junit, junitXml(runs));
  }
  const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
  if (opts.json) {
    const json = results.map(reportJson);
    process.stdout.write(JSON.stringify(opts.all ? json : json[0], null, 2) + '\n');
  } else if (opts.all) {
    process.stdout.write(summaryTable(results) + '\n');
  } else {
    process.stdout.write(renderRun(results[0]!, { color }) + '\n');
  }
  return results.every((r) => r.verdict.passed) ? EXIT.ok : EXIT.expectationFailed;
}
