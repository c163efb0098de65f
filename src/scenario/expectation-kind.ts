// The kind of an expectation, for dispatches that must handle every kind. A module of its
// own, without zod, so that the verifier (and a run of a scenario whose check is cached)
// does not load the schema library.
import type { Expectation, RstExpectation } from './schema.js';

/** An expectation tagged with its kind, so that a switch over the kinds can be exhaustive. */
export type TaggedExpectation =
  | { kind: 'rst'; rst: RstExpectation }
  | { kind: 'noRst' }
  | { kind: 'app'; app: Extract<Expectation, { app: unknown }>['app'] }
  | { kind: 'counter'; counter: Extract<Expectation, { counter: unknown }>['counter'] }
  | { kind: 'sockets'; sockets: Extract<Expectation, { sockets: unknown }>['sockets'] };

/**
 * The schema's expectations are keyed objects ({ rst: ... }); this tags them so that every
 * dispatch on them (the checks, the verifier) ends in a `never` case. Adding a kind to the
 * schema breaks the build here, and then at each dispatch, until it is handled.
 */
export function tagExpectation(e: Expectation): TaggedExpectation {
  if ('rst' in e) return { kind: 'rst', rst: e.rst };
  if ('noRst' in e) return { kind: 'noRst' };
  if ('app' in e) return { kind: 'app', app: e.app };
  if ('counter' in e) return { kind: 'counter', counter: e.counter };
  if ('sockets' in e) return { kind: 'sockets', sockets: e.sockets };
  const unreachable: never = e;
  throw new Error(`unknown expectation ${JSON.stringify(unreachable)}`);
}
