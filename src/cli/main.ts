#!/usr/bin/env node
// The rstlab command: argv → options → library calls → output and exit code.
// The only place that calls process.exit.
import { Command, InvalidArgumentError } from 'commander';
import { AbortedError, EXIT, InputError, LabBrokeError, LabError, REPORT_AT } from '../errors.js';
import { HOSTS } from '../vocabulary.js';
import { BACKENDS } from '../lab/backend.js';
import { backendByName, backendName } from '../lab/backends.js';
import { cleanupLabs } from './cleanup.js';
import { listScenarios, loadScenario } from '../scenario/load.js';
import { planFor } from '../scenario/plan.js';
import { toolsFor } from '../lab/tools.js';
import { handleSignals } from './signals.js';
import { EXIT_INTERRUPTED, runCommand, scenarioFile, scenariosDir, type RunCommandOptions } from './run.js';
import type { FirewallTestOptions } from '../firewall/command.js';
import type { LabUpOptions } from './lab.js';
import { renderRun } from '../report/text.js';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a whole number of at least 1');
  return n;
}

/** --debug or RSTLAB_DEBUG=1: an internal error shows its stack. */
let debug = process.env.RSTLAB_DEBUG === '1';

/** What a user sees of an error: one located line (a broken agent adds its stderr lines),
 * never a stack trace unless asked for. */
function exitCodeOf(e: unknown): number {
  if (e instanceof InputError) {
    process.stderr.write(`rstlab: ${e.located()}\n`);
    return e.exitCode;
  }
  if (e instanceof LabBrokeError) {
    process.stderr.write(`rstlab: ${e.message}${e.hint ? ` — ${e.hint}` : ''}\n`);
    return e.exitCode;
  }
  if (e instanceof LabError) {
    process.stderr.write(`rstlab: the lab could not be built: ${e.message}${e.hint ? ` — ${e.hint}` : ''}\n`);
    return e.exitCode;
  }
  return internalError(e);
}

/** A bug of rstlab's own: one line and EX_SOFTWARE (sysexits.h), the stack with --debug. */
function internalError(e: unknown): number {
  const message = e instanceof Error ? e.message : String(e);
  process.stderr.write(`rstlab: internal error: ${message.split('\n')[0]} (please report it at ${REPORT_AT}, with the output of --debug)\n`);
  if (debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return EXIT.internal;
}

// An exception no code path expected (a throw in an event handler): the run is stopped
// through the same signal as Ctrl-C, so its lab still comes down, and the exit says
// "internal error" instead of Node's stack trace.
let uncaught: unknown;
const stopAll = new AbortController();
const onUncaught = (e: unknown) => {
  if (uncaught === undefined) uncaught = e;
  stopAll.abort();
};
process.on('uncaughtException', onUncaught);
process.on('unhandledRejection', onUncaught);

async function main(argv: string[]): Promise<number> {
  const program = new Command()
    .name('rstlab')
    .description('Make each cause of a TCP reset happen in a real lab, and prove it from packet captures.')
    .option('--debug', 'show the stack of an internal error (also RSTLAB_DEBUG=1)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  let code: number = EXIT.ok;

  program
    .command('run')
    .description('run a scenario (a name from scenarios/ or a path to a .yaml file), or --all of them')
    .argument('[scenario]', 'scenario name or file')
    .option('--variant <name>', 'the variant to run: cause (default) or one from the file, e.g. control', 'cause')
    .option('--expect-of <name>', 'judge the run by the expectations of another variant (e.g. control steps, cause expectations: must fail)')
    .option('--backend <name>', BACKENDS.join(' or '), BACKENDS[0])
    .option('--all', 'run every scenario and every variant')
    .option('--jobs <n>', 'with --all: how many labs at once', positiveInt, 1)
    .option('--json', 'print the report as JSON instead of text')
    .option('--junit <file>', 'also write a JUnit XML report')
    .option('--runs-dir <dir>', 'where run folders go', 'runs')
    .option('--no-trace', 'do not record kernel RST reasons from tracefs')
    .option('--html', 'also write report.html in the run folder (with --all: an index page linking every run)')
    .option('--absolute-seq', 'show raw seq/ack numbers in the ladder (default: relative, as Wireshark shows them)')
    .option('--mystery', 'an exercise: print only the ladder and the pcaps\' folder, no cause, explanation or verdict (rstlab reveal shows them)')
    .option('--random', 'run a scenario picked at random (its cause)')
    .option('--lab <id>', 'run inside a kept lab (rstlab lab up), so a class can watch it live; the lab stays up')
    .option('--family <4|6|both>', 'the IP version: 4 (default), 6, or both (each run twice); a scenario with no IPv6 form is skipped over IPv6, with its reason', '4')
    .action(async (scenario: string | undefined, opts: RunCommandOptions, cmd: Command) => {
      if (!['4', '6', 'both'].includes(String(opts.family))) throw new InputError(`--family ${opts.family}: use 4, 6 or both`);
      if (!scenario && !opts.all && !opts.random) throw new InputError('name a scenario (rstlab list shows them), or use --all or --random');
      if (opts.all) {
        // --all runs every scenario and every variant: naming one as well is a contradiction
        const named = [scenario && `a scenario name (${scenario})`, cmd.getOptionValueSource('variant') === 'cli' && '--variant', opts.expectOf && '--expect-of'].filter(Boolean);
        if (named.length > 0) throw new InputError(`--all runs every scenario and variant; it cannot be combined with ${named.join(', ')}`);
      }
      if (opts.random && (scenario || opts.all)) throw new InputError('--random picks the scenario: give no name and no --all');
      if (opts.lab && opts.all) throw new InputError('--lab runs one scenario in a kept lab: not with --all');
      if (opts.lab && cmd.getOptionValueSource('backend') === 'cli') throw new InputError('--lab runs on the kept lab\'s own backend: leave out --backend');
      if (opts.mystery && (opts.all || opts.json || opts.junit)) throw new InputError('--mystery runs one scenario and hides its cause: not with --all, --json or --junit');
      backendName(opts.backend);
      const controller = new AbortController();
      const onUncaughtStop = () => controller.abort();
      stopAll.signal.addEventListener('abort', onUncaughtStop, { once: true });
      const release = handleSignals(process, controller, (s) => process.stderr.write(`\nrstlab: ${s}: stopping, taking the lab down…\n`));
      try {
        code = await runCommand(scenario, opts, controller.signal);
      } finally {
        release();
        stopAll.signal.removeEventListener('abort', onUncaughtStop);
      }
    });

  program
    .command('list')
    .description('the scenarios, with a one-line summary each and which of the nine common causes each covers')
    .action(async () => {
      process.stdout.write((await import('./list.js')).renderList(await listScenarios(scenariosDir())) + '\n');
    });

  program
    .command('explain')
    .description('a cause explained: how the scenario provokes it, what it looks like in Wireshark, how to tell it from others, how it is found and fixed')
    .argument('<scenario>', 'scenario name or file')
    .action(async (scenario: string) => {
      const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
      process.stdout.write((await import('../report/explain.js')).renderExplain(await loadScenario(scenarioFile(scenario)), { color }) + '\n');
    });

  program
    .command('reveal')
    .description('show what a --mystery run hid: the scenario, who sent each RST and why, the verdict')
    .argument('<run-dir>', 'the folder the mystery run printed')
    .action(async (dir: string) => {
      const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
      process.stdout.write(renderRun(await (await import('./mystery.js')).revealRun(dir), { color }) + '\n');
    });

  const lab = program.command('lab').description('a lab a class keeps running: up, ls, shell, exec, down');
  lab
    .command('up')
    .description('build a kept lab (set up as a scenario is, without its steps) and say how to get into each host')
    .option('--scenario <name>', 'apply this scenario\'s sysctls and firewall rules')
    .option('--variant <name>', 'the scenario\'s variant', 'cause')
    .option('--backend <name>', BACKENDS.join(' or '), BACKENDS[0])
    .action(async (opts: LabUpOptions) => {
      backendName(opts.backend);
      const controller = new AbortController();
      const release = handleSignals(process, controller, (s) => process.stderr.write(`\nrstlab: ${s}: stopping, taking the lab down…\n`));
      try {
        process.stdout.write(`${await (await import('./lab.js')).labUp(opts, controller.signal)}\n`);
      } catch (e) {
        if (e instanceof AbortedError) code = EXIT_INTERRUPTED;
        else throw e;
      } finally {
        release();
      }
    });
  lab
    .command('ls')
    .description('the kept labs on this machine')
    .action(async () => {
      process.stdout.write(`${await (await import('./lab.js')).labLs()}\n`);
    });
  lab
    .command('shell')
    .description('an interactive shell in a host of a kept lab (ip, ss, nstat, tcpdump, iptables, conntrack work there)')
    .argument('<host>', HOSTS.join(', '))
    .option('--lab <id>', 'which kept lab (default: the only one)')
    .action(async (host: string, opts: { lab?: string }) => {
      const lab = await import('./lab.js');
      const found = await lab.keptLabBackend(opts.lab);
      code = await lab.labTerminal(host, opts.lab, lab.shellArgv(found), process.stdin.isTTY === true);
    });
  lab
    .command('exec')
    .description('run a command in a host of a kept lab: rstlab lab exec client -- ss -tan')
    .argument('<host>', HOSTS.join(', '))
    .argument('<command...>', 'the command and its arguments (after --)')
    .option('--lab <id>', 'which kept lab (default: the only one)')
    .action(async (host: string, command: string[], opts: { lab?: string }) => {
      code = await (await import('./lab.js')).labTerminal(host, opts.lab, command, false);
    });
  lab
    .command('down')
    .description('take a kept lab down (and everything in it)')
    .argument('[id]', 'the lab (rstlab lab ls shows them)')
    .option('--all', 'every kept lab')
    .action(async (id: string | undefined, opts: { all?: boolean }) => {
      const removed = await (await import('./lab.js')).labDown(id, opts.all ?? false);
      process.stdout.write(removed.length ? removed.map((r) => `removed ${r}\n`).join('') : 'no kept lab to take down\n');
    });

  program
    .command('diagnose')
    .description('name the cause of each RST in pcap/pcapng captures taken anywhere, with its evidence')
    .argument('<file...>', 'pcap or pcapng files (several: the same traffic at different points)')
    .option('--json', 'print the diagnosis as JSON')
    .action(async (files: string[], opts: { json?: boolean }) => {
      const { diagnoseFiles, renderDiagnosis } = await import('../diagnose/diagnose.js');
      const results = await diagnoseFiles(files, await listScenarios(scenariosDir()));
      process.stdout.write(opts.json ? `${JSON.stringify({ files: results }, null, 2)}\n` : `${renderDiagnosis(results)}\n`);
    });

  program
    .command('cleanup')
    .description('remove the labs (namespaces, containers, trace instances, state) whose owner process is gone; say what is left and why')
    .option('--force', 'remove every rstlab lab on this machine, also those of running processes')
    .action(async (opts: { force?: boolean }) => {
      const { removed, left } = await cleanupLabs(opts.force ?? false);
      const lines = [...removed.map((r) => `removed ${r}`), ...left.map((l) => `left ${l}`)];
      if (removed.length === 0) lines.unshift('nothing to clean up');
      process.stdout.write(`${lines.join('\n')}\n`);
    });

  program
    .command('check')
    .description('check that this machine can build a lab and has every tool the scenarios need (or one scenario, named)')
    .argument('[scenario]', 'scenario name or file (default: every scenario in scenarios/)')
    .option('--backend <name>', BACKENDS.join(' or '), BACKENDS[0])
    .action(async (scenario: string | undefined, opts: { backend: string }) => {
      const loaded = scenario ? [await loadScenario(scenarioFile(scenario))] : await listScenarios(scenariosDir());
      const plans = loaded.flatMap((s) => s.variants.map((v) => planFor(s, v)));
      await (await backendByName(opts.backend)).check(toolsFor(plans));
      process.stdout.write(`the ${opts.backend} backend can build labs here${scenario ? ` for ${scenario}` : ''}\n`);
    });

  program
    .command('firewall-test')
    .description('regression-test a firewall ruleset with live packets: each row of --expect through the lab firewall running --rules')
    .requiredOption('--rules <file>', 'the ruleset: iptables-save output or an nft ruleset (recognised from its content)')
    .option('--rules6 <file>', 'the IPv6 half of an iptables ruleset: ip6tables-save output (an nft ruleset holds its IPv6 rules itself: inet or ip6 tables)')
    .requiredOption('--expect <file>', 'the expectation file (YAML): rows of port, from, idle, expect')
    .option('--format <format>', 'force the ruleset format: iptables or nftables')
    .option('--junit <file>', 'also write JUnit XML, one testcase per row')
    .option('--json', 'print one JSON object per row instead of the table')
    .option('--backend <name>', BACKENDS.join(' or '), BACKENDS[0])
    .option('--drop-wait <time>', 'how long a row waits for an answer before it counts as dropped (e.g. 1s, 500ms)', '1s')
    .option('--runs-dir <dir>', 'where run folders go', 'runs')
    .option('--no-trace', 'do not record kernel RST reasons from tracefs')
    .option('--min-coverage <percent>', 'fail (exit 1) when fewer of the ruleset\'s rules than this are reached by a row')
    .option('--mutants', 'also run the matrix against one-rule mutants of the ruleset and report which rows kill each')
    .option('--jobs <n>', 'labs at once for --mutants (default 4)')
    .action(async (opts: FirewallTestOptions) => {
      backendName(opts.backend);
      const controller = new AbortController();
      stopAll.signal.addEventListener('abort', () => controller.abort(), { once: true });
      const release = handleSignals(process, controller, (s) => process.stderr.write(`\nrstlab: ${s}: stopping, taking the lab down…\n`));
      try {
        code = await (await import('../firewall/command.js')).firewallTestCommand(opts, controller.signal);
      } finally {
        release();
      }
    });

  program.hook('preAction', () => {
    if (program.opts<{ debug?: boolean }>().debug) debug = true;
  });

  try {
    await program.parseAsync(argv);
  } catch (e) {
    const ce = e as { code?: string; exitCode?: number };
    if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) {
      return ce.code === 'commander.helpDisplayed' || ce.code === 'commander.version' || ce.code === 'commander.help' ? EXIT.ok : EXIT.badInput;
    }
    if (uncaught !== undefined) return internalError(uncaught);
    return exitCodeOf(e);
  }
  if (uncaught !== undefined) return internalError(uncaught);
  return code;
}

process.exit(await main(process.argv));
