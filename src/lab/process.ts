// Small helpers for the processes a backend starts on the host machine.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { ExecResult, LabProcess } from './backend.js';

/** The full path of an executable found in PATH (plus the sbin folders root has), or undefined. */
export function findInPath(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Feed stdin, gather stdout and stderr, wait for the end. */
export async function collect(p: LabProcess, stdin?: string): Promise<ExecResult> {
  let stdout = '';
  let stderr = '';
  p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  p.stdin.on('error', () => undefined); // the process may exit without reading it
  p.stdin.end(stdin ?? '');
  const { code } = await p.exited;
  return { code, stdout, stderr };
}

/** Start a program on the host machine; a program that cannot start exits 127, as in a shell. */
/** The environment of lab processes: a lab host is a machine of its own and inherits
 * nothing of ours (NODE_EXTRA_CA_CERTS alone costs an agent most of a second to start). */
export const LAB_ENV: NodeJS.ProcessEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };

export function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = LAB_ENV): LabProcess & { pid: number | undefined } {
  const child: ChildProcessWithoutNullStreams = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once('error', () => resolve({ code: 127, signal: null }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  return { stdin: child.stdin, stdout: child.stdout, stderr: child.stderr, exited, kill: (s = 'SIGTERM') => void child.kill(s), pid: child.pid };
}

/** Run a program on the host machine (not in a lab host) to its end. */
export function run(cmd: string, args: string[], stdin?: string): Promise<ExecResult> {
  return collect(start(cmd, args), stdin);
}

// include/uapi/linux/capability.h
const CAPABILITY_BIT = { NET_ADMIN: 12, SYS_ADMIN: 21 } as const;

/** Whether this process holds these capabilities (root usually does; root with its
 * capabilities dropped does not, and cannot make namespaces or wire veth pairs). */
export function hasCapabilities(...names: (keyof typeof CAPABILITY_BIT)[]): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) return false;
  const effective = BigInt(`0x${m[1]}`);
  return names.every((n) => (effective >> BigInt(CAPABILITY_BIT[n])) & 1n);
}
