// Helpers for tests that run the real CLI against real labs.
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
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

/** The processes that own the labs this test process made: itself, and every CLI it started.
 * Other labs (other users', other test runs') may be up on the machine at the same time. */
export const OWNERS = new Set<number>([process.pid]);

export function startCli(args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid) OWNERS.add(child.pid);
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

/** The pid of the process that owns lab `id`, from its record (src/lab/owner.ts; written before
 * anything of the lab is made and removed after all of it is gone). */
export function ownerOf(id: string): number | undefined {
  try {
    return (JSON.parse(readFileSync(`${STATE_DIR}/labs/${id}.json`, 'utf8')) as { owner: { pid: number } }).owner.pid;
  } catch {
    return undefined;
  }
}
const STATE_DIR = process.env.RSTLAB_STATE_DIR ?? '/run/rstlab';

/** The lab a process belongs to, and its owner's pid, from the marks every lab process carries in its environment. */
export function labOfProcess(pid: string): { lab?: string; owner?: number } {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    const get = (k: string) => env.find((e) => e.startsWith(`${k}=`))?.slice(k.length + 1);
    const owner = get('RSTLAB_OWNER');
    return { lab: get('RSTLAB_LAB'), owner: owner ? Number(owner) : undefined };
  } catch {
    return {};
  }
}

/**
 * What the labs of `owners` (by default: this test process and the CLIs it started) left on
 * this machine: their namespaces and tcpdump processes. Nothing of other labs is counted.
 */
export function leftovers(owners: Set<number> = OWNERS): { namespaces: string[]; tcpdumps: string[] } {
  let namespaces: string[] = [];
  try {
    namespaces = readdirSync('/run/netns').filter((n) => {
      const id = /^rstlab-(.+)-(client|firewall|server|impostor|switch)$/.exec(n)?.[1];
      const owner = id === undefined ? undefined : ownerOf(id);
      return owner !== undefined && owners.has(owner);
    });
  } catch {
    // no /run/netns: no namespace at all
  }
  let tcpdumps: string[] = [];
  try {
    tcpdumps = execFileSync('pgrep', ['-a', 'tcpdump'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean)
      .filter((line) => owners.has(labOfProcess(line.split(' ')[0]!).owner ?? -1));
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

/** Docker containers and networks labelled rstlab.lab whose owner label is one of `owners` (what a Docker lab of this test can leave behind). */
export function dockerLeftovers(owners: Set<number> = OWNERS): { containers: string[]; networks: string[] } {
  const list = (args: string[]) =>
    execFileSync('docker', [...args, '--filter', 'label=rstlab.lab', '--format', '{{.Names}} {{.Label "rstlab.owner.pid"}}'], { encoding: 'utf8' })
      .trim().split('\n').filter(Boolean).map((l) => l.split(' '))
      .filter(([, pid]) => owners.has(Number(pid))).map(([name]) => name!);
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
