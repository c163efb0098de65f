// The backends by name. Docker's module (and with it dockerode) is loaded only when
// asked for, so a netns run starts fast.
import { InputError } from '../errors.js';
import type { Backend } from './backend.js';
import { netnsBackend } from './netns/netns-backend.js';
import { cleanupTraceInstances } from '../capture/kernel-resets.js';

export async function backendByName(name: string): Promise<Backend> {
  if (name === 'netns') return netnsBackend;
  if (name === 'docker') return (await import('./docker/docker-backend.js')).dockerBackend;
  throw new InputError(`unknown backend "${name}": use netns or docker`);
}

/** Everything with the rstlab prefix or label, on every backend that is reachable. */
export async function cleanupAll(): Promise<string[]> {
  const removed = [...(await netnsBackend.cleanup()).map((n) => `namespace ${n}`), ...(await cleanupTraceInstances())];
  try {
    const docker = await backendByName('docker');
    removed.push(...(await docker.cleanup()));
  } catch {
    // no Docker here, or its daemon is not running: nothing of ours can be there either
  }
  return removed;
}
