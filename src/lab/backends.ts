// The backends by name. Docker's module (and with it dockerode) is loaded only when
// asked for, so a netns run starts fast.
import { InputError } from '../errors.js';
import { BACKENDS, type Backend, type BackendName } from './backend.js';
import { netnsBackend } from './netns/netns-backend.js';

/** The name of a backend, checked: anything else is a usage error (exit 2). */
export function backendName(name: string): BackendName {
  const known = BACKENDS.find((b) => b === name);
  if (known === undefined) throw new InputError(`unknown backend "${name}": use ${BACKENDS.join(' or ')}`);
  return known;
}

export async function backendByName(name: string): Promise<Backend> {
  switch (backendName(name)) {
    case 'netns':
      return netnsBackend;
    case 'docker':
      return (await import('./docker/docker-backend.js')).dockerBackend;
  }
}
