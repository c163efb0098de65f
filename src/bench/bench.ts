// npm run bench: how long a scenario costs, and where the time goes.
//   closed-port on netns (and Docker when it is reachable): median wall time of the CLI
//   from process start to exit, split into lab up, capture ready, steps, verify, lab down;
//   run --all with --jobs 1 and 4, and per scenario the share of protocol waits (the steps,
//   which hold the waits the cause needs) against lab overhead (everything else). Each
//   headline figure is printed beside its aim (issue 10): closed-port on netns ≤ 0.3 s, on
//   Docker ≤ 0.8 s, run --all --jobs 4 within 1.2 × its longest scenario.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cli, leanEnv } from './cli.js';

interface Report {
  scenario: string;
  variant: string;
  passed: boolean;
  timings: { labUp: number; captureReady: number; steps: number; verify: number; labDown: number; total: number };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const ms = (x: number) => `${Math.round(x)} ms`.padStart(8);
/** "aim ≤ 300 ms: met" or "... missed by 40 ms" */
const aim = (x: number, limit: number) => `aim ≤ ${Math.round(limit)} ms: ${x <= limit ? 'met' : `missed by ${Math.round(x - limit)} ms`}`;
/** closed-port end to end */
const AIM_MS = { netns: 300, docker: 800 } as const;
/** run --all --jobs 4 may take this many times its longest scenario */
const ALL_AIM_FACTOR = 1.2;

async function closedPort(backend: string, runs: number, env: NodeJS.ProcessEnv, label: string, aimMs?: number): Promise<void> {
  const walls: number[] = [];
  const reports: Report[] = [];
  // one unmeasured run first: file caches, and on Docker the image build
  await cli(['run', 'closed-port', '--json', '--backend', backend], env);
  for (let i = 0; i < runs; i++) {
    const r = await cli(['run', 'closed-port', '--json', '--backend', backend], env);
    if (r.code !== 0) throw new Error(`closed-port failed on ${backend} (exit ${r.code})`);
    walls.push(r.wall);
    reports.push(JSON.parse(r.stdout) as Report);
  }
  const t = (k: keyof Report['timings']) => median(reports.map((r) => r.timings[k]));
  const startup = median(walls.map((w, i) => w - reports[i]!.timings.total));
  const wall = median(walls);
  console.log(`closed-port on ${backend}${label}, median of ${runs}: ${ms(wall)} end to end${aimMs ? `   (${aim(wall, aimMs)})` : ''}`);
  console.log(`  node start + load ${ms(startup)}`);
  console.log(`  lab up            ${ms(t('labUp'))}   (hosts, agents)`);
  console.log(`  capture ready     ${ms(t('captureReady'))}   (4 × tcpdump listening)`);
  console.log(`  steps             ${ms(t('steps'))}   (incl. drain of the captures)`);
  console.log(`  verify            ${ms(t('verify'))}   (decode pcaps, judge)`);
  console.log(`  lab down          ${ms(t('labDown'))}`);
}

async function all(env: NodeJS.ProcessEnv): Promise<void> {
  for (const jobs of [1, 4]) {
    const r = await cli(['run', '--all', '--json', '--jobs', String(jobs)], env);
    const reports = JSON.parse(r.stdout) as Report[];
    const failed = reports.filter((x) => !x.passed).length;
    const longest = reports.reduce((a, b) => (b.timings.total > a.timings.total ? b : a));
    const vs = jobs === 1 ? '' : `   (${aim(r.wall, ALL_AIM_FACTOR * longest.timings.total)}: ${ALL_AIM_FACTOR} × the longest, ${longest.scenario} ${longest.variant},${ms(longest.timings.total)})`;
    console.log(`run --all --jobs ${jobs}: ${ms(r.wall)} for ${reports.length} runs (${failed} failed)${vs}`);
    if (jobs !== 1) continue;
    console.log(`  ${'scenario'.padEnd(26)} ${'variant'.padEnd(8)} ${'total'.padStart(8)} ${'protocol'.padStart(8)} ${'overhead'.padStart(8)}`);
    for (const x of reports) {
      const overhead = x.timings.total - x.timings.steps;
      console.log(`  ${x.scenario.padEnd(26)} ${x.variant.padEnd(8)} ${ms(x.timings.total)} ${ms(x.timings.steps)} ${ms(overhead)}`);
    }
    const overheads = reports.map((x) => x.timings.total - x.timings.steps);
    console.log(`  lab overhead per scenario: median ${ms(median(overheads))}, max ${ms(Math.max(...overheads))}`);
  }
}

/** firewall-test: a 20-row matrix on the example gateway (mixed outcomes, 6 drops, no idle row), end to end. */
const FIREWALL_AIM_MS = 3000;
const MATRIX: [number, string, string?][] = [
  [22, 'reach'], [80, 'reach'], [443, 'reach'], [22, 'reach'], [80, 'reach'],
  [23, 'reset-by-firewall'], [3306, 'reset-by-firewall'], [23, 'reset-by-firewall'], [3306, 'reset-by-firewall'],
  [113, 'unreachable'], [113, 'unreachable'],
  [8080, 'reset-by-server'], [8080, 'reset-by-server'],
  [25, 'drop'], [21, 'drop'], [110, 'drop'], [143, 'drop'], [3389, 'drop'], [53, 'drop', 'server'], [22, 'drop', 'server'],
];

async function firewallMatrix(runs: number, env: NodeJS.ProcessEnv): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rstlab-bench-fw-'));
  try {
    const expectFile = join(dir, 'matrix.expect.yaml');
    writeFileSync(expectFile, `rows:\n${MATRIX.map(([port, outcome, from]) => `  - { port: ${port}, expect: ${outcome}${from ? `, from: ${from}` : ''} }\n`).join('')}`);
    const args = ['firewall-test', '--rules', 'examples/firewall/gateway-iptables.rules', '--expect', expectFile, '--json', '--runs-dir', join(dir, 'runs')];
    const walls: number[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await cli(args, env);
      if (r.code !== 0) throw new Error(`firewall-test matrix failed (exit ${r.code})`);
      walls.push(r.wall);
    }
    const drops = MATRIX.filter(([, o]) => o === 'drop').length;
    console.log(`firewall-test, ${MATRIX.length} rows (${drops} drops, drop wait 1 s) on netns, median of ${runs}: ${ms(median(walls))} end to end   (${aim(median(walls), FIREWALL_AIM_MS)})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** firewall-test --mutants on each example gateway (10 rows, one of them idle 4 s past conntrack),
 * the matrix on the ruleset itself and then every mutant, with the default 4 labs: "well under a
 * minute" on a 2-core machine (issue 11). */
const MUTANTS_AIM_MS = 30_000;

async function firewallMutants(env: NodeJS.ProcessEnv): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rstlab-bench-mut-'));
  try {
    for (const [rules, expectFile] of [['gateway-iptables.rules', 'gateway-iptables.expect.yaml'], ['gateway-nft.nft', 'gateway-nft.expect.yaml']]) {
      const r = await cli(['firewall-test', '--rules', `examples/firewall/${rules}`, '--expect', `examples/firewall/${expectFile}`, '--mutants', '--json', '--runs-dir', join(dir, 'runs')], env);
      if (r.code !== 0) throw new Error(`firewall-test --mutants on ${rules} failed (exit ${r.code})`);
      const out = JSON.parse(r.stdout) as { mutants: { rowsRun: number[] }[]; mutationScore: { killed: number; survived: number; percent: number; seconds: number } };
      const ran = out.mutants.filter((m) => m.rowsRun.length > 0).length;
      const s = out.mutationScore;
      console.log(`firewall-test --mutants ${rules}: ${ms(r.wall)} end to end for ${out.mutants.length} mutants (${ran} run in labs, ${s.killed} killed, ${s.survived} survived, score ${s.percent}%; mutants ${ms(s.seconds * 1000)})   (${aim(r.wall, MUTANTS_AIM_MS)})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function dockerReachable(): Promise<boolean> {
  const r = await cli(['check', '--backend', 'docker'], process.env);
  return r.code === 0;
}

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' }, quick: { type: 'boolean' } } });
const runs = Number(values.runs);
const lean = leanEnv();
await closedPort('netns', runs, lean, '', AIM_MS.netns);
if (process.env.NODE_EXTRA_CA_CERTS) {
  await closedPort('netns', runs, process.env, ' with NODE_EXTRA_CA_CERTS set (as in this shell)');
  console.log('  (this environment sets NODE_EXTRA_CA_CERTS: every node start then loads the CA bundle first)');
}
await firewallMatrix(Math.min(runs, 3), lean);
await firewallMutants(lean);
if (!values.quick) await all(lean);
if (await dockerReachable()) await closedPort('docker', runs, lean, ' (image already built)', AIM_MS.docker);
else console.log('closed-port on docker: skipped, Docker is not reachable here (rstlab check --backend docker says why)');
