// How long each step may take, what a run says when it waited too long, and how a run
// tells "the lab broke under me" from its own failures.
import { setTimeout as delay } from 'node:timers/promises';
import { AbortedError, DeadlineError, InputError, LabBrokeError, withDeadline } from '../errors.js';
import type { Lab } from '../lab/backend.js';
import type { Step } from '../scenario/schema.js';

/** Default deadline of a step. A step that waits on the network (connect, a listener, a
 * send) is done in milliseconds in a lab of veth pairs; what takes longer is the kernel
 * retrying (a dropped SYN is retried for about 2 minutes, RFC 6298 backoff over
 * tcp_syn_retries=6), and a scenario that means to wait for that says so with timeoutMs. */
export const STEP_MS = 10_000;
/** How long a waitFor step waits for its event unless it says otherwise. */
export const WAIT_FOR_MS = 5_000;

/** The deadline of one step: its own timeoutMs, else the default (a sleep: its time on top). */
export function stepDeadline(step: Step): number {
  // waitFor fails by itself at its timeoutMs, with its own message; this is only a backstop
  if (step.do === 'waitFor') return (step.timeoutMs ?? WAIT_FOR_MS) + 1_000;
  if (step.timeoutMs !== undefined) return step.timeoutMs;
  return step.do === 'sleep' ? step.ms + STEP_MS : STEP_MS;
}

/** What a step waits for, for the message of a step that runs out of time. */
export function stepWaitsFor(step: Step): string {
  switch (step.do) {
    case 'connect':
      return `connect ${step.id} from ${step.host} to ${step.to}:${step.port} to succeed or fail`;
    case 'listen':
      return `${step.host} to listen on port ${step.port}`;
    case 'waitFor':
      return `the ${step.host} end of ${step.conn} to see ${step.event}`;
    case 'sleep':
      return `a sleep of ${step.ms} ms`;
    case 'iptables':
      return `iptables in ${step.host}`;
    case 'killSocket':
      return `ss -K in ${step.host} to destroy ${step.conn}`;
    case 'sysctl':
      return `the agent in ${step.host} to set ${step.name}`;
    case 'stopListener':
      return `${step.host} to close listener ${step.listener}`;
    case 'snapshot':
      return `the agent in ${step.host} to take snapshot ${step.name}`;
    case 'announce':
      return `the impostor to take ${step.address} and announce it`;
    default:
      return `the agent in ${step.host} to ${step.do} on ${step.conn}`;
  }
}

/** Run one step within its deadline; running out of time is the step's failure. */
export function stepWithinDeadline<T>(step: Step, run: Promise<T>): Promise<T> {
  const ms = stepDeadline(step);
  return withDeadline(run, ms, stepWaitsFor(step)).catch((e: Error) => {
    throw e instanceof DeadlineError ? new DeadlineError(`${stepWaitsFor(step)} (set timeoutMs on the step to wait longer)`, ms) : e;
  });
}

/** Whether the lab is gone (someone removed its namespaces or containers): a host of it no
 * longer runs a command. Bounded: a lab too slow to say is taken as still there. */
export async function labGone(lab: Lab): Promise<boolean> {
  try {
    const r = await withDeadline(lab.exec('client', ['true']), 3_000, 'a probe of the lab');
    return r.code !== 0;
  } catch (e) {
    return !(e instanceof DeadlineError);
  }
}

/** What a run that threw ends with: bad input and Ctrl-C as they are; the cause behind the
 * run's abort; a lab removed under the run; a wait that ran out of time as a broken lab. */
export async function classify(e: unknown, lab: Lab | undefined, aborted: AbortSignal): Promise<unknown> {
  if (e instanceof InputError || e instanceof AbortedError) return e;
  const cause = aborted.aborted && aborted.reason instanceof Error ? aborted.reason : e;
  if (lab) {
    // `rstlab cleanup` kills a lab's processes before it deletes its namespaces: an agent
    // killed by it is seen a moment before the lab is gone.
    let gone = await labGone(lab);
    if (!gone && cause instanceof LabBrokeError) gone = await delay(300).then(() => labGone(lab));
    if (gone) return new LabBrokeError(`the lab ${lab.id} was removed under the run (by someone else, e.g. rstlab cleanup in another shell)`);
  }
  // the lab's id names what to look for (rstlab-<id>-*) if anything is left
  if (cause instanceof LabBrokeError || cause instanceof DeadlineError) return new LabBrokeError(lab ? `lab ${lab.id}: ${cause.message}` : cause.message);
  return cause;
}
