// The agent runs inside every lab host, where the image holds only node, the raw-socket addon
// and the project's bind-mounted dist/src (no node_modules besides raw-socket): so the agent's
// compiled code, followed through every file it imports, may import only Node's built-ins
// and raw-socket. Checked statically on dist/, what actually runs.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

// This file runs from dist/test/unit/.
const dist = fileURLToPath(new URL('../../', import.meta.url));
const ALLOWED_PACKAGES = new Set(['raw-socket']);

/** Every specifier a compiled file names: static and dynamic imports and require() calls, as
 * TypeScript's own scanner finds them, plus any require/import of a string literal inside a
 * string (the agent's worker is code given to `new Worker(..., { eval: true })`). A specifier
 * that is not a string literal cannot be checked, so it is reported as such. */
function specifiersOf(source: string): string[] {
  const found = new Set(ts.preProcessFile(source, true, true).importedFiles.map((f) => f.fileName));
  for (const m of source.matchAll(/\b(?:require|import)\s*\(\s*(['"`])([^'"`]+)\1\s*\)/g)) found.add(m[2] as string);
  for (const m of source.matchAll(/\b(?:require|import)\s*\(\s*(?!['"`])([^)]*)\)/g)) found.add(`<not a string literal: ${m[1]}>`);
  return [...found];
}

/** Walk the import graph from a compiled file; what it reaches outside built-ins, allowed
 * packages and its own files, each with the file that imports it. */
function foreignImports(entry: string): { files: string[]; foreign: string[] } {
  const seen = new Set<string>();
  const foreign: string[] = [];
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of specifiersOf(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('./') || spec.startsWith('../')) visit(resolve(dirname(file), spec));
      else if (spec.startsWith('node:') ? builtinModules.includes(spec.slice(5)) : builtinModules.includes(spec)) continue;
      else if (!ALLOWED_PACKAGES.has(spec)) foreign.push(`${spec} (in ${relative(dist, file)})`);
    }
  };
  visit(entry);
  return { files: [...seen].map((f) => relative(dist, f)).sort(), foreign };
}

describe('the agent imports only Node built-ins and raw-socket', () => {
  it('dist/src/agent/main.js, followed through every file it imports', () => {
    const { files, foreign } = foreignImports(resolve(dist, 'src/agent/main.js'));
    expect(foreign).to.deep.equal([]);
    // The walk did follow the graph: the agent's own modules and raw-socket's user are in it.
    expect(files).to.include.members(['src/agent/main.js', 'src/agent/forge.js', 'src/agent/procfs.js']);
  });

  it('the same walk finds a package that is not allowed (dockerode, from the docker backend)', () => {
    const { foreign } = foreignImports(resolve(dist, 'src/lab/docker/docker-backend.js'));
    expect(foreign.some((f) => f.startsWith('dockerode '))).to.equal(true);
  });

  it('reads require() inside eval\'d code and refuses what it cannot read', () => {
    expect(specifiersOf('const w = `const net = require(\'node:net\'); const x = require("chalk");`')).to.include.members(['node:net', 'chalk']);
    expect(specifiersOf('await import(name)')).to.deep.equal(['<not a string literal: name>']);
  });
});
