// Scenario file → checked scenario. Nothing is started on bad input (docs/DESIGN.md), so
// every mistake a scenario file can hold is found here and reported as file:line:col, the
// form editors and terminals turn into a link. The parts: messages.ts turns zod issues and
// YAML errors into located messages, checks.ts finds what the schema cannot see, plan.ts
// makes a run's plan of a loaded scenario.
import { readFile, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { InputError } from '../errors.js';
import { checkScenario } from './checks.js';
import { collect, issueProblems, pathText, rangeAt, yamlError, type Located, type Problem, type SourcePath, type SourcePosition } from './messages.js';
import { CAUSE_VARIANT, Scenario, type ScenarioFile } from './schema.js';

export type { SourcePath, SourcePosition };

export interface LoadedScenario {
  file: string;
  scenario: ScenarioFile;
  /** Every variant of the scenario, `cause` first, then the keys of `variants` in file order. */
  variants: string[];
  /** Source lines: of each step (by index in `scenario.steps`), and of each expectation by variant;
   * where each firewall rule is (by index in `scenario.firewall.rules`). */
  lines: { steps: number[]; expect: Record<string, number[]>; rules: SourcePosition[] };
  /** Where a path of the parsed file is written (the nearest existing node for a missing one). */
  locate(path: SourcePath): SourcePosition;
}

// ---------------------------------------------------------------------------------------
// Loading

export async function loadScenario(file: string): Promise<LoadedScenario> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read scenario file: ${(err as Error).message}`, file);
  }
  return parseScenario(text, file);
}

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
    },
    locate: (path) => locate(path),
  };
}

/** Every *.yaml in a folder, sorted by name; each file must be named after its `name:`. */
export async function listScenarios(dir: string): Promise<LoadedScenario[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.yaml')).sort();
  } catch (err) {
    throw new InputError(`cannot read scenario folder: ${(err as Error).message}`, dir);
  }
  const loaded: LoadedScenario[] = [];
  for (const n of names) {
    const s = await loadScenario(join(dir, n));
    const expected = basename(n, '.yaml');
    if (s.scenario.name !== expected) {
      // The CLI finds a scenario by file name, reports and run folders use `name:`; they must agree.
      const { line, col } = s.locate(['name']);
      throw new InputError(`name: "${s.scenario.name}" does not match the file name; expected "${expected}"`, s.file, line, col);
    }
    loaded.push(s);
  }
  return loaded;
}
