// Exercises: `run NAME --mystery` (or `run --random --mystery`) runs a scenario and shows
// only the ladder and the pcaps' folder; `rstlab reveal RUN_DIR` shows what was hidden.
// The folder a teacher hands out must not give the answer away, so a mystery run's folder
// is renamed to `<time>-mystery-<lab id>` (no scenario name), its all.pcapng and
// report.html name no cause, and the answer (the whole run, for the full report) is kept
// beside it, outside the folder: `<runs-dir>/.answers/<folder>.json`.
import { randomInt } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.js';
import type { RunResult } from '../run/runner.js';
import type { LoadedScenario } from '../scenario/load.js';

const ANSWERS = '.answers';

function answerFile(runDir: string): string {
  return join(dirname(runDir), ANSWERS, `${basename(runDir)}.json`);
}

/** A scenario picked at random (crypto's randomInt: uniform, no modulo bias). */
export function pickRandom(all: LoadedScenario[]): LoadedScenario {
  if (all.length === 0) throw new InputError('there are no scenarios to pick from');
  return all[randomInt(all.length)]!;
}

/** Rename the run's folder so that its name tells nothing, and keep the answer beside it. */
export async function hideAnswer(r: RunResult): Promise<RunResult> {
  const name = basename(r.dir).slice(0, 15); // yyyymmdd-hhmmss
  const dir = join(dirname(r.dir), `${name}-mystery-${r.labId}`);
  await rename(r.dir, dir);
  const hidden: RunResult = { ...r, dir };
  await mkdir(join(dirname(dir), ANSWERS), { recursive: true });
  await writeFile(answerFile(dir), JSON.stringify(hidden) + '\n');
  return hidden;
}

/** The run a mystery folder hides. */
export async function revealRun(runDir: string): Promise<RunResult> {
  const dir = runDir.replace(/\/+$/, '');
  let text: string;
  try {
    text = await readFile(answerFile(dir), 'utf8');
  } catch {
    throw new InputError(`no hidden answer for this folder (looked for ${answerFile(dir)}); reveal takes the folder a --mystery run printed`, runDir);
  }
  try {
    return JSON.parse(text) as RunResult;
  } catch {
    throw new InputError(`the answer file is not valid JSON`, answerFile(dir));
  }
}
