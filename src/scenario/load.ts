// Scenario file → checked scenario. Nothing is started on bad input (docs/DESIGN.md), so
// every mistake a scenario file can hold is found (parse.ts) and reported as
// file:line:col, the form editors and terminals turn into a link. The parts: parse.ts
// checks a file (messages.ts turns zod issues and YAML errors into located messages,
// checks.ts finds what the schema cannot see), cache.ts remembers files that passed, and
// plan.ts makes a run's plan of a loaded scenario.
import { constants } from 'node:fs';
import { open, readdir, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { InputError } from '../errors.js';
import { cachedCheck, rememberCheck } from './cache.js';
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
  lines: { steps: number[]; expect: Record<string, number[]>; rules: SourcePosition[]; ruleset?: SourcePosition };
  /** Where a path of the parsed file is written (the nearest existing node for a missing one). */
  locate(path: SourcePath): Promise<SourcePosition>;
}

// ---------------------------------------------------------------------------------------
// Loading

/** A scenario is a page or two of YAML; a bigger file is a mistake (or an attack on memory). */
export const MAX_SCENARIO_BYTES = 1024 * 1024;

export async function loadScenario(file: string): Promise<LoadedScenario> {
  let text: string;
  // Opened non-blocking and judged by the open file itself: a FIFO is not waited on, and
  // what is read is the regular file that was checked.
  let handle: FileHandle | undefined;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    const st = await handle.stat();
    if (!st.isFile()) throw new InputError('not a regular file (a scenario is a .yaml file)', file);
    if (st.size > MAX_SCENARIO_BYTES) throw new InputError(`the file is ${st.size} bytes; a scenario file may be at most ${MAX_SCENARIO_BYTES} (1 MB)`, file);
    // what fstat saw is what is read, however the file changes meanwhile
    const buf = Buffer.alloc(st.size);
    const { bytesRead } = await handle.read(buf, 0, st.size, 0);
    text = buf.subarray(0, bytesRead).toString('utf8');
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`cannot read scenario file: ${(err as Error).message}`, file);
  } finally {
    await handle?.close();
  }
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
