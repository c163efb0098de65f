// The shape of the code, as docs/DESIGN.md "Where things live" describes it: short files,
// the lab's vocabulary written once, and the import rules between the folders of src/.
// Each rule is a function over a set of files, tried on the real src/ and on a small bad
// example, so that each can be seen to fail.
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';
import { ROOT } from '../helpers.js';

const MAX_LINES = 450;
const SRC = join(ROOT, 'src');

/** path relative to the folder (with /) → text */
type Files = Map<string, string>;

function readTree(dir: string, ext: string): Files {
  const files: Files = new Map();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(ext)) files.set(relative(dir, p).split(sep).join('/'), readFileSync(p, 'utf8'));
    }
  };
  walk(dir);
  return files;
}

function tooLong(files: Files): string[] {
  return [...files].filter(([, text]) => text.split('\n').length - (text.endsWith('\n') ? 1 : 0) > MAX_LINES).map(([f]) => f);
}

/** Every module a file names: static imports and re-exports (type-only too), dynamic import(), require(). */
function specifiers(text: string): string[] {
  const out: string[] = [];
  const patterns = [/^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/gm, /^\s*import\s*['"]([^'"]+)['"]/gm, /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g, /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const re of patterns) for (const m of text.matchAll(re)) out.push(m[1]!);
  return out;
}

/** The file a relative specifier names, relative to the tree ('.js' written for '.ts'). */
function resolveIn(from: string, spec: string, ext: string): string {
  return posix.normalize(posix.join(posix.dirname(from), spec)).replace(/\.js$/, ext);
}

/** Imports from a file in folder `from` of a file in folder `to` (top-level folders of src/). */
function crossImports(files: Files, from: string, to: string): string[] {
  const found: string[] = [];
  for (const [f, text] of files) {
    if (!f.startsWith(`${from}/`)) continue;
    for (const spec of specifiers(text)) {
      if (spec.startsWith('.') && resolveIn(f, spec, '.ts').startsWith(`${to}/`)) found.push(`${f} imports ${spec}`);
    }
  }
  return found;
}

const HOST_NAMES = new Set(['client', 'firewall', 'server']);
const POINT_NAMES = new Set(['client', 'firewall-a', 'firewall-b', 'server']);

/** Array literals of quoted strings only, at least two of them. */
function stringLists(text: string): string[][] {
  const lists: string[][] = [];
  for (const m of text.matchAll(/\[([^[\]]*)\]/g)) {
    const items = m[1]!.split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (items.length < 2 || !items.every((s) => /^'[^']*'$|^"[^"]*"$/.test(s))) continue;
    lists.push(items.map((s) => s.slice(1, -1)));
  }
  return lists;
}

/** Lists made only of host names (or only of capture point names) outside the vocabulary module. */
function vocabularyOutside(files: Files, home: string): string[] {
  const found: string[] = [];
  for (const [f, text] of files) {
    if (f === home) continue;
    for (const list of stringLists(text)) {
      if (list.every((s) => HOST_NAMES.has(s)) || list.every((s) => POINT_NAMES.has(s))) found.push(`${f}: [${list.join(', ')}]`);
    }
  }
  return found;
}

/** How many times the full host list is written, in any order. */
function hostListCount(files: Files): number {
  let n = 0;
  for (const text of files.values()) {
    n += stringLists(text).filter((l) => l.length === HOST_NAMES.size && [...HOST_NAMES].every((h) => l.includes(h))).length;
  }
  return n;
}

describe('layout', () => {
  const src = readTree(SRC, '.ts');

  it(`has no file under src/ over ${MAX_LINES} lines`, () => {
    expect(src.size).to.be.greaterThan(20);
    expect(tooLong(src)).to.deep.equal([]);
    expect(tooLong(new Map([['long.ts', 'x\n'.repeat(MAX_LINES + 1)]]))).to.deep.equal(['long.ts']);
    expect(tooLong(new Map([['ok.ts', 'x\n'.repeat(MAX_LINES)]]))).to.deep.equal([]);
  });

  it('keeps capture/ and verify/ apart, and lab/ from capture/', () => {
    expect(crossImports(src, 'capture', 'verify')).to.deep.equal([]);
    expect(crossImports(src, 'verify', 'capture')).to.deep.equal([]);
    expect(crossImports(src, 'lab', 'capture')).to.deep.equal([]);
    // capture may use lab (tcpdump runs in a lab host), and the rule sees type-only imports too
    expect(crossImports(src, 'capture', 'lab')).to.not.deep.equal([]);
    const bad: Files = new Map([
      ['verify/x.ts', "import type { TcpPacket } from '../capture/packet.js';"],
      ['lab/docker/y.ts', "const m = await import('../../capture/kernel-resets.js');"],
    ]);
    expect(crossImports(bad, 'verify', 'capture')).to.deep.equal(["verify/x.ts imports ../capture/packet.js"]);
    expect(crossImports(bad, 'lab', 'capture')).to.deep.equal(["lab/docker/y.ts imports ../../capture/kernel-resets.js"]);
  });

  it('writes the host list and the capture points once, in src/vocabulary.ts', () => {
    expect(hostListCount(src)).to.equal(1);
    expect(hostListCount(new Map([['vocabulary.ts', src.get('vocabulary.ts')!]]))).to.equal(1);
    expect(vocabularyOutside(src, 'vocabulary.ts')).to.deep.equal([]);
    const bad: Files = new Map([['run/r.ts', "const HOSTS: Host[] = ['server', 'client', 'firewall'];\nz.enum(['client', 'server'])"]]);
    expect(hostListCount(bad)).to.equal(1);
    expect(vocabularyOutside(bad, 'vocabulary.ts')).to.deep.equal(['run/r.ts: [server, client, firewall]', 'run/r.ts: [client, server]']);
  });

  it('keeps the vocabulary free of imports, so that everything (the agent too) may import it', () => {
    expect(specifiers(src.get('vocabulary.ts')!)).to.deep.equal([]);
  });
});
