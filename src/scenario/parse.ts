// The full check of a scenario file: YAML → schema (zod) → semantic checks, every problem
// located as file:line:col. The heavy part of loading (yaml and zod take ~100 ms to load),
// so load.ts imports it only for a file whose check is not cached.
import { LineCounter, parseDocument } from 'yaml';
import { InputError } from '../errors.js';
import { checkScenario } from './checks.js';
import { collect, issueProblems, pathText, rangeAt, yamlError, type Located, type Problem, type SourcePath, type SourcePosition } from './messages.js';
import { Scenario } from './schema.js';
import { CAUSE_VARIANT } from '../vocabulary.js';
import type { LoadedScenario } from './load.js';

/** Load from text already read; `file` is only used in messages. */
export function parseScenario(text: string, file: string): LoadedScenario {
  const lineCounter = new LineCounter();
  // prettyErrors off: we locate errors ourselves, in the same file:line:col form as the rest.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): SourcePosition => lineCounter.linePos(offset);

  if (doc.errors.length > 0) {
    throw collect(file, doc.errors.map((e) => yamlError(doc, text, e.code, e.message, e.pos[0], at)));
  }
  if (doc.contents === null) {
    throw new InputError('the file holds no scenario (expected a mapping with name, summary, explanation, steps, expect)', file, 1, 1);
  }

  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    // e.g. an alias bomb: yaml refuses to expand too many aliases.
    throw new InputError(`cannot read the YAML: ${(err as Error).message}`, file, 1, 1);
  }

  const locate = (path: SourcePath, part: 'value' | 'key' = 'value'): SourcePosition => {
    const range = rangeAt(doc, path, part);
    return range === undefined ? { line: 1, col: 1 } : at(range);
  };
  const place = (problems: Problem[]): Located[] =>
    problems.map((p) => ({ ...locate(p.path, p.at), message: `${pathText(p.path)}: ${p.message}` }));

  const parsed = Scenario.safeParse(data);
  if (!parsed.success) {
    throw collect(file, place(issueProblems(parsed.error.issues, [], data)));
  }
  const scenario = parsed.data;
  const variants = [CAUSE_VARIANT, ...Object.keys(scenario.variants)];

  const semantic = checkScenario(scenario, variants, locate);
  if (semantic.length > 0) throw collect(file, place(semantic));

  const lineOf = (path: SourcePath) => locate(path).line;
  const expectLines: Record<string, number[]> = {
    [CAUSE_VARIANT]: scenario.expect.map((_, i) => lineOf(['expect', i])),
  };
  for (const [name, v] of Object.entries(scenario.variants)) {
    expectLines[name] = v.expect.map((_, i) => lineOf(['variants', name, 'expect', i]));
  }
  return {
    file,
    scenario,
    variants,
    lines: {
      steps: scenario.steps.map((_, i) => lineOf(['steps', i])),
      expect: expectLines,
      rules: (scenario.firewall?.rules ?? []).map((_, i) => locate(['firewall', 'rules', i])),
      ruleset: locate(['firewall', scenario.firewall?.nftables !== undefined ? 'nftables' : 'iptables']),
    },
    locate: async (path) => locate(path),
  };
}
