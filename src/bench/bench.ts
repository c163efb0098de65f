// npm run bench: how long a scenario costs, and where the time goes.
//   closed-port on netns (and Docker when it is reachable): median wall time of the CLI
//   from process start to exit, split into lab up, capture ready, steps, verify, lab down;
//   run --all with --jobs 1 and 2, and per scenario the share of protocol waits (the steps,
//   which hold the waits the cause needs) against lab overhead (everything else).
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

async function closedPort(backend: string, runs: number, env: NodeJS.ProcessEnv, label: string): Promise<void> {
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
  console.log(`closed-port on ${backend}${label}, median of ${runs}: ${ms(median(walls))} end to end`);
  console.log(`  node start + load ${ms(startup)}`);
  console.log(`  lab up            ${ms(t('labUp'))}   (hosts, agents)`);
  console.log(`  capture ready     ${ms(t('captureReady'))}   (4 × tcpdump listening)`);
  console.log(`  steps             ${ms(t('steps'))}   (incl. drain of the captures)`);
  console.log(`  verify            ${ms(t('verify'))}   (decode pcaps, judge)`);
  console.log(`  lab down          ${ms(t('labDown'))}`);
}

async function all(env: NodeJS.ProcessEnv): Promise<void> {
  for (const jobs of [1, 2]) {
    const r = await cli(['run', '--all', '--json', '--jobs', String(jobs)], env);
    const reports = JSON.parse(r.stdout) as Report[];
    const failed = reports.filter((x) => !x.passed).length;
    console.log(`run --all --jobs ${jobs}: ${ms(r.wall)} for ${reports.length} runs (${failed} failed)`);
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

async function dockerReachable(): Promise<boolean> {
  const r = await cli(['check', '--backend', 'docker'], process.env);
  return r.code === 0;
}

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' }, quick: { type: 'boolean' } } });
const runs = Number(values.runs);
const lean = leanEnv();
await closedPort('netns', runs, lean, '');
if (process.env.NODE_EXTRA_CA_CERTS) {
  await closedPort('netns', runs, process.env, ' with NODE_EXTRA_CA_CERTS set (as in this shell)');
  console.log('  (this environment sets NODE_EXTRA_CA_CERTS: every node start then loads the CA bundle first)');
}
if (!values.quick) await all(lean);
if (await dockerReachable()) await closedPort('docker', runs, lean, ' (image already built)');
else console.log('closed-port on docker: skipped, Docker is not reachable here (rstlab check --backend docker says why)');
