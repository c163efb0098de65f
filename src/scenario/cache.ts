// Scenario files that passed every check, remembered by their content, so that running a
// scenario again loads neither the YAML parser nor the schema library (together ~100 ms of
// a run that otherwise takes a few hundred). The key is a hash of the file's text and of
// the compiled checking code itself: a change to either is a new key, never a stale answer.
// The cache lives in the user's own cache folder (XDG_CACHE_HOME or ~/.cache), which only
// that user can write; a file that cannot be read or written there is simply checked again.
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadedScenario } from './load.js';

type Checked = Pick<LoadedScenario, 'scenario' | 'variants' | 'lines'>;

/** The compiled code that decides whether a file passes: this folder and the vocabulary. */
const CHECKER_DIR = fileURLToPath(new URL('./', import.meta.url));
const VOCABULARY = fileURLToPath(new URL('../vocabulary.js', import.meta.url));

function cacheDir(): string | undefined {
  if (process.env.RSTLAB_NO_CACHE) return undefined;
  const base = process.env.XDG_CACHE_HOME || (process.env.HOME ? join(homedir(), '.cache') : undefined);
  return base ? join(base, 'rstlab', 'checked') : undefined;
}

let checkerHash: Promise<string> | undefined;
function checker(): Promise<string> {
  checkerHash ??= (async () => {
    const h = createHash('sha256');
    const names = (await readdir(CHECKER_DIR)).filter((n) => n.endsWith('.js')).sort();
    for (const f of [...names.map((n) => join(CHECKER_DIR, n)), VOCABULARY]) h.update(f).update(await readFile(f));
    return h.digest('hex');
  })();
  return checkerHash;
}

async function entryFile(text: string): Promise<string | undefined> {
  const dir = cacheDir();
  if (!dir) return undefined;
  const key = createHash('sha256').update(await checker()).update('\0').update(text).digest('hex');
  return join(dir, `${key}.json`);
}

export async function cachedCheck(text: string): Promise<Checked | undefined> {
  try {
    const file = await entryFile(text);
    return file ? (JSON.parse(await readFile(file, 'utf8')) as Checked) : undefined;
  } catch {
    return undefined; // not checked before, or unreadable: check it
  }
}

export async function rememberCheck(text: string, s: LoadedScenario): Promise<void> {
  try {
    const file = await entryFile(text);
    if (!file) return;
    await mkdir(join(file, '..'), { recursive: true, mode: 0o700 });
    // write, then rename: a reader never sees half an entry
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ scenario: s.scenario, variants: s.variants, lines: s.lines } satisfies Checked));
    await rename(tmp, file);
  } catch {
    // a cache that cannot be written costs time, never correctness
  }
}
