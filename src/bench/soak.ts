// npm run soak: every scenario and every control, N times in a row (10 by default).
// A scenario that fails once in N is flaky, and flakiness is a bug: this prints the rate.
import { parseArgs } from 'node:util';
import { cli, leanEnv } from './cli.js';

const { values } = parseArgs({ options: { times: { type: 'string', default: '10' }, jobs: { type: 'string', default: '1' }, backend: { type: 'string', default: 'netns' } } });
const times = Number(values.times);
const env = leanEnv();

const tally = new Map<string, { pass: number; fail: number }>();
for (let i = 1; i <= times; i++) {
  const { code, stdout } = await cli(['run', '--all', '--json', '--jobs', values.jobs!, '--backend', values.backend!], env);
  if (code !== 0 && code !== 1) throw new Error(`round ${i}: rstlab exited ${code}`);
  for (const r of JSON.parse(stdout) as { scenario: string; variant: string; passed: boolean }[]) {
    const key = `${r.scenario} ${r.variant}`;
    const t = tally.get(key) ?? { pass: 0, fail: 0 };
    if (r.passed) t.pass++;
    else t.fail++;
    tally.set(key, t);
  }
  console.log(`round ${i}/${times} done`);
}
let failures = 0;
let total = 0;
for (const [key, t] of tally) {
  failures += t.fail;
  total += t.pass + t.fail;
  console.log(`${key.padEnd(40)} ${t.pass}/${t.pass + t.fail} passed${t.fail ? `  FLAKY (${t.fail} failed)` : ''}`);
}
console.log(`${total - failures} passed, ${failures} failed (failure rate ${((100 * failures) / Math.max(total, 1)).toFixed(1)}%)`);
process.exit(failures === 0 ? 0 : 1);
