// What can be checked before any lab is built: the folders and files a run will write, and
// the sysctls a scenario sets. Each problem is bad input (exit 2), and nothing is built.
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rmdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import type { LoadedScenario } from '../scenario/load.js';

/** Make `dir` and its parents, one level at a time. Not mkdir({recursive}): Node's loops
 * forever where the kernel answers ENOENT for a parent that exists (/proc, /sys). */
export async function makeFolder(dir: string, what: string): Promise<void> {
  let at = '/';
  for (const part of resolve(dir).split('/').filter(Boolean)) {
    at = join(at, part);
    try {
      if (!(await stat(at)).isDirectory()) throw new InputError(`${what} ${dir}: ${at} is not a folder`);
      continue;
    } catch (e) {
      if (e instanceof InputError) throw e;
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new InputError(`${what} ${dir}: ${(e as Error).message}`);
    }
    try {
      await mkdir(at);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new InputError(`${what} ${dir}: cannot make the folder ${at}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
}

/** The runs folder can be had: it, or the nearest part of its path that exists, is a
 * folder in which a folder can be made. Nothing is left made: a run stopped later (a
 * missing tool) leaves no runs folder behind. */
export async function checkRunsDir(dir: string): Promise<void> {
  let at = resolve(dir);
  for (;;) {
    try {
      if (!(await stat(at)).isDirectory()) throw new InputError(`--runs-dir ${dir}: ${at} is not a folder`);
      break;
    } catch (e) {
      if (e instanceof InputError) throw e;
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || at === '/') throw new InputError(`--runs-dir ${dir}: ${(e as Error).message}`);
      at = dirname(at);
    }
  }
  // access(W_OK) says yes to root anywhere; making a folder is the real test (/proc, /sys,
  // a read-only mount say no to it).
  try {
    await rmdir(await mkdtemp(join(at, '.rstlab-check-')));
  } catch (e) {
    throw new InputError(`--runs-dir ${dir}: cannot make a folder in ${at}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** A report file can be written: its folder exists and is writable, and it is not a folder. */
export async function checkOutputFile(file: string, what: string): Promise<void> {
  const folder = dirname(resolve(file));
  try {
    if (!(await stat(folder)).isDirectory()) throw new InputError(`${what} ${file}: ${folder} is not a folder`);
    await access(folder, constants.W_OK);
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`${what} ${file}: ${code === 'ENOENT' ? `the folder ${folder} does not exist` : `cannot write in ${folder} (${code})`}`);
  }
  try {
    if ((await stat(file)).isDirectory()) throw new InputError(`${what} ${file}: it is a folder, not a file`);
  } catch (e) {
    if (e instanceof InputError) throw e;
    // not there yet: it will be made
  }
}

/** A sysctl's file under /proc/sys. */
const sysctlPath = (name: string) => `/proc/sys/${name.replaceAll('.', '/')}`;

/**
 * The scenario's sysctls, as far as this machine can tell before a lab exists: the name
 * exists here (a new namespace has no sysctl the machine lacks; net.netfilter.* appear only
 * once nf_conntrack is loaded, so those are checked only where it is), and the value has
 * the shape of the current one (one integer, or as many integers as e.g. tcp_rmem holds).
 * What the kernel still refuses in the lab is reported then, also as bad input.
 */
export async function checkSysctls(s: LoadedScenario): Promise<void> {
  const sc = s.scenario;
  const conntrackHere = await exists('/proc/sys/net/netfilter/nf_conntrack_max');
  const found: { path: (string | number)[]; name: string; value: string | number }[] = [];
  const add = (base: (string | number)[], set: Partial<Record<string, Record<string, string | number>>> | undefined) => {
    for (const [host, values] of Object.entries(set ?? {})) {
      for (const [name, value] of Object.entries(values ?? {})) found.push({ path: [...base, host, name], name, value });
    }
  };
  add(['sysctls'], sc.sysctls);
  for (const [v, def] of Object.entries(sc.variants)) add(['variants', v, 'sysctls'], def.sysctls);
  sc.steps.forEach((st, i) => {
    if (st.do === 'sysctl') found.push({ path: ['steps', i, 'value'], name: st.name, value: st.value });
  });
  for (const { path, name, value } of found) {
    const fail = async (message: string) => {
      const { line, col } = await s.locate(path);
      return new InputError(message, s.file, line, col);
    };
    if (name.startsWith('net.netfilter.') && !conntrackHere) continue;
    let current: string;
    try {
      current = await readFile(sysctlPath(name), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw await fail(`no sysctl ${name} on this machine's kernel`);
      continue; // there, but not readable (a write-only one): the kernel judges its value
    }
    const text = String(value).trim();
    if (/[\n\r\0]/.test(String(value))) throw await fail(`sysctl ${name}: the value must be one line`);
    const shape = current.trim().split(/\s+/);
    if (shape.every((w) => /^-?\d+$/.test(w))) {
      const words = text.split(/\s+/);
      if (words.length !== shape.length || !words.every((w) => /^-?\d+$/.test(w))) {
        throw await fail(`sysctl ${name} takes ${shape.length === 1 ? 'an integer' : `${shape.length} integers separated by spaces`} (now ${current.trim()}), not "${text}"`);
      }
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
