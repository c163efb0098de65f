// Scenario file → checked scenario. Nothing is started on bad input (docs/DESIGN.md), so
// every mistake a scenario file can hold is found (parse.ts) and reported as
// file:line:col, the form editors and terminals turn into a link. The parts: parse.ts
// checks a file (messages.ts turns zod issues and YAML errors into located messages,
// checks.ts finds what the schema cannot see), cache.ts remembers files that passed, and
// plan.ts makes a run's plan of a loaded scenario.
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { InputError } from '../errors.js';
import { cachedCheck, rememberCheck } from './cache.js';
import { readInputFile } from './input-file.js';
import type { SourcePath, SourcePosition } from './messages.js';
import type { ScenarioFile } from './schema.js';

export type { SourcePath, SourcePosition };

export interface LoadedScenario {
  file: string;
  scenario: ScenarioFile;
  /** Every variant of the scenario, `cause` first, then the keys of `variants` in file order. */
  variants: string[];
  /** Source lines: of each step (by index in `scenario.steps`), and of each expectation by variant;
   * where each firewall rule is (by index in `scenario.firewall.rules`), and the ruleset file's name. */
  lines: { steps: number[]; expect: Record<string, number[]>; rules: SourcePosition[]; ruleset?: SourcePosition; ruleset6?: SourcePosition };
  /** Where a path of the parsed file is written (the nearest existing node for a missing one). */
  locate(path: SourcePath): Promise<SourcePosition>;
}

// ---------------------------------------------------------------------------------------
// Loading

/** A scenario is a page or two of YAML; a bigger file is a mistake (or an attack on memory). */
export const MAX_SCENARIO_BYTES = 1024 * 1024;

export async function loadScenario(file: string): Promise<LoadedScenario> {
  const text = await readInputFile(file, 'a scenario file', MAX_SCENARIO_BYTES);
  // A file already checked by this very loader needs no YAML parser nor schema library:
  // a run starts ~100 ms sooner (docs/DESIGN.md "Speed").
  const cached = await cachedCheck(text);
  if (cached) return { file, ...cached, locate: async (path) => (await parse(text, file)).locate(path) };
  const loaded = await parse(text, file);
  await rememberCheck(text, loaded);
  return loaded;
}

async function parse(text: string, file: string): Promise<LoadedScenario> {
  return (await import('./parse.js')).parseScenario(text, file);
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
      const { line, col } = await s.locate(['name']);
      throw new InputError(`name: "${s.scenario.name}" does not match the file name; expected "${expected}"`, s.file, line, col);
    }
    loaded.push(s);
  }
  return loaded;
}
