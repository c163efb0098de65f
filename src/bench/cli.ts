// The rstlab CLI as bench and soak run it: a child process from the project root, its
// stdout collected, its stderr (progress) passed through, its wall time measured.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** This process's environment without NODE_EXTRA_CA_CERTS, which costs each Node start most of a second here. */
export function leanEnv(): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _ca, ...env } = process.env;
  return env;
}

export function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ wall: number; code: number | null; stdout: string }> {
  const start = performance.now();
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ wall: performance.now() - start, code, stdout })));
}
