// The exit codes of docs/DESIGN.md, and the errors that carry them up to the CLI, the only
// place that calls process.exit.
export const EXIT = { ok: 0, expectationFailed: 1, badInput: 2, labFailed: 3, internal: 70, interrupted: 130 } as const;

/** Where an internal error (a bug of rstlab's own) is to be reported. */
export const REPORT_AT = "rstlab's issue tracker";

/** Bad input: usage, an invalid scenario file, an unreadable rules file (exit 2). */
export class InputError extends Error {
  readonly exitCode = EXIT.badInput;
  constructor(message: string, readonly file?: string, readonly line?: number, readonly col?: number) {
    super(message);
    this.name = 'InputError';
  }
  /** file:line:col: message, the form editors and terminals link to. */
  located(): string {
    if (!this.file) return this.message;
    const where = this.line ? `${this.file}:${this.line}:${this.col ?? 1}` : this.file;
    return `${where}: ${this.message}`;
  }
}

/** The lab could not be built: a missing tool, no privileges, Docker not reachable (exit 3). */
export class LabError extends Error {
  readonly exitCode = EXIT.labFailed;
  constructor(message: string, readonly hint?: string) {
    super(message);
    this.name = 'LabError';
  }
}

/** The lab was built but broke under the run: an agent ended or broke its protocol, a
 * capture never started, someone removed the lab (exit 3, like a lab that could not be built). */
export class LabBrokeError extends LabError {
  constructor(message: string, hint?: string) {
    super(message, hint);
    this.name = 'LabBrokeError';
  }
}

/** A wait that ran out of time; the message says what was waited for. */
export class DeadlineError extends Error {
  constructor(what: string, readonly ms: number) {
    super(`waited ${ms} ms for ${what}`);
    this.name = 'DeadlineError';
  }
}

/** The run was interrupted (SIGINT, SIGTERM): exit 130 once the lab is down. */
export class AbortedError extends Error {
  constructor() {
    super('the run was interrupted');
    this.name = 'AbortedError';
  }
}

/** Reject with `what` when `p` has not settled within `ms`. The late outcome of `p` is
 * dropped (and never becomes an unhandled rejection). */
export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  p.catch(() => undefined);
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new DeadlineError(what, ms)), ms);
    p.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}

/** Reject when `signal` aborts: with its reason when that is an Error (a broken lab), else
 * with AbortedError (Ctrl-C), so that no wait can keep a lab up. */
export function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  const reason = () => (signal.reason instanceof Error ? signal.reason : new AbortedError());
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(reason());
  }
  p.catch(() => undefined);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(reason());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
