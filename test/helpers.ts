// Helpers for tests that run the real CLI against real labs.
import { spawn, execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = `${ROOT}dist/src/cli/main.js`;
export const fixture = (path: string) => `${ROOT}test/fixtures/${path}`;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment of the CLI under test (without NODE_EXTRA_CA_CERTS, which costs each node start most of a second here). */
export function cliEnv(): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _ca, ...env } = process.env;
  return { ...env, NO_COLOR: '1' };
}

export function startCli(args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}

export function rstlab(...args: string[]): Promise<CliResult> {
  return startCli(args).done;
}

/** What a lab can leave behind on this machine: namespaces and tcpdump processes. */
export function leftovers(): { namespaces: string[]; tcpdumps: string[] } {
  let namespaces: string[] = [];
  try {
    namespaces = readdirSync('/run/netns').filter((n) => n.startsWith('rstlab-'));
  } catch {
    // no /run/netns: no namespace at all
  }
  let tcpdumps: string[] = [];
  try {
    tcpdumps = execFileSync('pgrep', ['-a', 'tcpdump'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    // pgrep exits 1 when nothing matches
  }
  return { namespaces, tcpdumps };
}

/** The run folder a CLI report names on its last lines. */
export function runDirOf(stdout: string): string {
  const m = /pcaps and report: (\S+)/.exec(stdout);
  if (!m) throw new Error(`no run folder in output:\n${stdout}`);
  return m[1]!.startsWith('/') ? m[1]! : `${ROOT}${m[1]}`;
}

export async function until(ok: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Docker containers and networks labelled rstlab.lab (what a Docker lab can leave behind). */
export function dockerLeftovers(): { containers: string[]; networks: string[] } {
  const list = (args: string[]) =>
    execFileSync('docker', [...args, '--filter', 'label=rstlab.lab', '--format', '{{.Names}}'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  return { containers: list(['ps', '-a']), networks: list(['network', 'ls']) };
}

export function dockerReachable(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}
