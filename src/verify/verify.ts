// The one evaluator of a scenario's expectations against what a run observed.
//
// RSTs are judged as events, not as packets: the same RST crosses up to four capture
// points, so it is first merged into one RstSighting (sightings.ts). Every rst expectation
// is then matched against the sightings (judge.ts), and every sighting no expectation
// claimed is a failure of its own: a scenario proves that exactly the expected RSTs
// appeared, not merely that one of them did.
import { tagExpectation } from '../scenario/expectation-kind.js';
import type { Expectation } from '../scenario/schema.js';
import { judgeApp, judgeCounter, judgeNoRst, judgeRst, judgeSockets, type Result } from './judge.js';
import { capturedPoints, contextOf, describeRst, rstSightings, type RstSighting, type VerifyOptions } from './sightings.js';
import type { Observations } from '../vocabulary.js';

export interface Verdict {
  passed: boolean;
  results: Result[];
  rsts: RstSighting[];
}


// ---------------------------------------------------------------------------------------
// The evaluator

export function verify(expect: { expectation: Expectation; line: number }[], obs: Observations, opts: VerifyOptions): Verdict {
  const captured = capturedPoints(opts);
  const rsts = rstSightings(obs, opts);
  const results: Result[] = [];
  const claimed = new Set<RstSighting>();
  let hasNoRst = false;

  for (const { expectation, line } of expect) {
    const x = tagExpectation(expectation);
    switch (x.kind) {
      case 'rst': {
        const { result, matched } = judgeRst(line, x.rst, rsts, obs, captured);
        results.push(result);
        // An expectation claims as many sightings as it counts, unclaimed ones first, so
        // that two expectations of one RST each still leave a second RST unexplained.
        const order = [...matched.filter((s) => !claimed.has(s)), ...matched.filter((s) => claimed.has(s))];
        for (const s of order.slice(0, x.rst.count ?? 1)) claimed.add(s);
        break;
      }
      case 'noRst':
        hasNoRst = true;
        results.push(judgeNoRst(line, rsts, obs));
        break;
      case 'app':
        results.push(judgeApp(line, x.app, obs, captured));
        break;
      case 'counter':
        results.push(judgeCounter(line, x.counter, obs));
        break;
      case 'sockets':
        results.push(judgeSockets(line, x.sockets, obs));
        break;
      default: {
        const unreachable: never = x;
        throw new Error(`unknown expectation ${JSON.stringify(unreachable)}`);
      }
    }
  }

  // Exactly the expected RSTs: each one no rst expectation claimed fails on its own. A
  // noRst expectation already lists every RST, so it is not reported twice.
  if (!hasNoRst) {
    for (const s of rsts) {
      if (claimed.has(s)) continue;
      results.push({
        line: 0,
        kind: 'unexpected-rst',
        passed: false,
        summary: 'no RST other than the expected ones',
        detail: `unexpected ${describeRst(s)}`,
        context: contextOf(obs, s),
      });
    }
  }
  return { passed: results.every((r) => r.passed), results, rsts };
}
