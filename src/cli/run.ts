// `rstlab run`: one scenario with its report, or --all of them in a pool of labs with a
// summary table.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { AbortedError, abortable, EXIT, InputError } from '../errors.js';
import { backendByName } from '../lab/backends.js';
import type { Backend, Lab } from '../lab/backend.js';
import { toolsFor } from '../lab/tools.js';
import { junitXml, reportJson, writeFileAtomically, writeReportJson } from '../report/json.js';
import { renderMystery, renderRun } from '../report/text.js';
import { writeTeachingArtifacts } from '../report/artifacts.js';
import { checkOutputFile, checkRunsDir, checkSysctls } from '../run/preflight.js';
import { runScenario, type RunResult } from '../run/runner.js';
import { listScenarios, loadScenario } from '../scenario/load.js';
import { planFor, type Plan } from '../scenario/plan.js';
import { FAMILIES, type Family } from '../vocabulary.js';

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
  /** raw seq/ack in the ladder instead of relative ones */
  absoluteSeq?: boolean;
  /** also write report.html (and with --all an index page) */
  html?: boolean;
  /** an exercise: show the ladder only, hide the cause (mystery.ts) */
  mystery?: boolean;
  /** run a scenario picked at random */
  random?: boolean;
  /** the id of a kept lab to run in (rstlab lab up) */
  lab?: string;
  /** the IP version(s): '4' (default), '6' or 'both' */
  family?: string;
}

/** The families --family names. */
export function familiesOf(family: string | undefined): Family[] {
  return family === 'both' ? [...FAMILIES] : family === '6' ? [6] : [4];
}

/** Exit code of an interrupted run (128 + SIGINT), after the lab is down. */
export const EXIT_INTERRUPTED = EXIT.interrupted;

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

/**
 * Run the plans in a pool of `jobs` labs. The first error (not a failed expectation: a lab
 * that broke, an internal error) stops the other workers, and every worker's lab is down
 * before this returns or throws: Ctrl-C or an error never leaves a lab behind a worker
 * that was still tearing down.
 */
/** What a plan waits for at most by its own word: its sleeps and the waits it gives a
 * timeoutMs (keepalive-timeout's 15 s), the protocol time its cause needs. */
export function protocolWaitMs(plan: Plan): number {
  return plan.steps.reduce((sum, { step }) => sum + (step.do === 'sleep' ? step.ms : step.do === 'waitFor' ? step.timeoutMs ?? 0 : 0), 0);
}

async function runAll(plans: Plan[], backend: Backend, opts: RunCommandOptions, signal: AbortSignal, kept?: Lab): Promise<RunResult[]> {
  const results: RunResult[] = new Array(plans.length);
  // The longest runs first, so that the short ones fill the other workers meanwhile and the
  // pool ends close to its longest run (results stay in the plans' order).
  const order = plans.map((_, i) => i).sort((a, b) => protocolWaitMs(plans[b]!) - protocolWaitMs(plans[a]!));
  const pool = new AbortController();
  const onSignal = () => pool.abort();
  if (signal.aborted) pool.abort();
  signal.addEventListener('abort', onSignal, { once: true });
  let firstError: unknown;
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < plans.length && !pool.signal.aborted) {
      const i = order[next++]!;
      const plan = plans[i]!;
      try {
        const r = await runScenario(plan, { backend, runsDir: opts.runsDir, signal: pool.signal, traceResets: opts.trace, ...(kept ? { lab: kept } : {}) });
        // a mystery run's folder holds no report.json: it names the cause (mystery.ts keeps it aside)
        if (!opts.mystery) await writeReportJson(r);
        await writeTeachingArtifacts(r, { html: opts.html, absoluteSeq: opts.absoluteSeq, mystery: opts.mystery });
        results[i] = r;
        done++;
        const verdict = r.verdict.passed ? 'PASS' : 'FAIL';
        if (plans.length > 1) process.stderr.write(`[${done}/${plans.length}] ${verdict} ${plan.name} ${plan.variant}${plan.family === 6 ? ' IPv6' : ''} (${(r.timings.total / 1000).toFixed(1)} s)\n`);
      } catch (e) {
        // the runs this stops end with AbortedError: only the first real error counts
        if (!(e instanceof AbortedError) && firstError === undefined) {
          firstError = e;
          if (plans.length > 1) process.stderr.write(`rstlab: ${plan.name} ${plan.variant} broke: stopping the other runs, taking their labs down…\n`);
        }
        pool.abort();
      }
    }
  };
  await Promise.allSettled(Array.from({ length: Math.min(opts.jobs, plans.length) }, worker));
  signal.removeEventListener('abort', onSignal);
  if (signal.aborted) throw new AbortedError();
  if (firstError !== undefined) throw firstError;
  return results;
}

function summaryTable(results: RunResult[], skipped: Plan[]): string {
  const v6 = skipped.length > 0 || results.some((r) => r.plan.family === 6);
  const ip = (p: Plan) => (v6 ? [`IPv${p.family}`] : []);
  const rows = results.map((r) => {
    const senders = [...new Set(r.verdict.rsts.map((s) => (s.ipSource && s.ipSource !== s.from ? `${s.from} (as ${s.ipSource})` : s.from ?? '?')))];
    return [r.plan.name, r.plan.variant, ...ip(r.plan), r.verdict.passed ? 'PASS' : 'FAIL', senders.join(', ') || '-', `${(r.timings.total / 1000).toFixed(2)} s`];
  });
  for (const p of skipped) rows.push([p.name, p.variant, ...ip(p), 'SKIP', 'no IPv6 form (below)', '-']);
  const head = ['scenario', 'variant', ...(v6 ? ['family'] : []), 'verdict', 'RST sent by', 'time'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const passed = results.filter((r) => r.verdict.passed).length;
  const why = [...new Map(skipped.map((p) => [p.name, p.skip!])).entries()].map(([name, reason]) => `  ${name}: ${reason}`);
  return [
    line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), '',
    ...(why.length > 0 ? ['Skipped over IPv6, and why:', ...why, ''] : []),
    `${passed} passed, ${results.length - passed} failed${skipped.length > 0 ? `, ${skipped.length} skipped over IPv6` : ''}`,
  ].join('\n');
}

/** A run's name in JUnit: its variant, and the family where it is IPv6. */
function variantName(p: Plan): string {
  return p.family === 6 ? `${p.variant} (IPv6)` : p.variant;
}

export async function runCommand(scenario: string | undefined, opts: RunCommandOptions, signal: AbortSignal): Promise<number> {
  // Everything is read and checked before any lab is built.
  let plans: Plan[];
  const loaded = opts.all
    ? await listScenarios(scenariosDir())
    : opts.random
      ? [(await import('./mystery.js')).pickRandom(await listScenarios(scenariosDir()))]
      : [await loadScenario(scenarioFile(scenario!))];
  const families = familiesOf(opts.family);
  if (opts.all) {
    plans = families.flatMap((f) => loaded.flatMap((s) => s.variants.map((v) => planFor(s, v, undefined, f))));
  } else if (opts.random) {
    plans = families.map((f) => planFor(loaded[0]!, 'cause', undefined, f));
  } else {
    plans = families.map((f) => planFor(loaded[0]!, opts.variant, opts.expectOf, f));
  }
  // A scenario with no IPv6 form is skipped over IPv6, and says why (its ipv6.skip): never silently.
  const skipped = plans.filter((p) => p.skip !== undefined);
  plans = plans.filter((p) => p.skip === undefined);
  for (const p of skipped) process.stderr.write(`SKIP ${p.name} ${p.variant} over IPv6: ${p.skip}\n`);
  for (const s of loaded) await checkSysctls(s);
  await checkRunsDir(opts.runsDir);
  if (opts.junit) await checkOutputFile(opts.junit, '--junit');
  // a kept lab brings its own backend (its record says which)
  const kept = opts.lab ? await (await import('./lab.js')).attachKeptLab(opts.lab) : undefined;
  const backend = kept?.backend ?? (await backendByName(opts.backend));
  let results: RunResult[];
  try {
    // check() may build the Docker image first: Ctrl-C must not wait for that
    await abortable(backend.check(toolsFor(plans)), signal);
    results = plans.length > 0 ? await runAll(plans, backend, opts, signal, kept?.lab) : [];
  } catch (e) {
    if (e instanceof AbortedError) return EXIT_INTERRUPTED;
    throw e;
  }

  if (opts.html && opts.all) process.stderr.write(`every run's report: ${await (await import('../report/html.js')).writeIndexHtml(opts.runsDir, results)}\n`);
  if (opts.junit) {
    const runs = [
      ...results.map((r) => ({ name: r.plan.name, variant: variantName(r.plan), seconds: r.timings.total / 1000, failure: failureText(r) })),
      ...skipped.map((p) => ({ name: p.name, variant: variantName(p), seconds: 0, skipped: `no IPv6 form: ${p.skip}` })),
    ];
    await writeFileAtomically(opts.junit, junitXml(runs));
  }
  const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
  if (opts.mystery) {
    const hidden = await (await import('./mystery.js')).hideAnswer(results[0]!);
    process.stdout.write(renderMystery(hidden, { color, absoluteSeq: opts.absoluteSeq }) + '\n');
  } else if (opts.json) {
    const json = [...results.map(reportJson), ...skipped.map((p) => ({ scenario: p.name, variant: p.variant, family: p.family, skipped: p.skip }))];
    process.stdout.write(JSON.stringify(json.length === 1 ? json[0] : json, null, 2) + '\n');
  } else if (opts.all || results.length !== 1) {
    process.stdout.write(summaryTable(results, skipped) + '\n');
  } else {
    process.stdout.write(renderRun(results[0]!, { color, absoluteSeq: opts.absoluteSeq }) + '\n');
  }
  return results.every((r) => r.verdict.passed) ? EXIT.ok : EXIT.expectationFailed;
}
