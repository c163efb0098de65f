// The exit codes of docs/DESIGN.md, and the errors that carry them up to the CLI, the only
// place that calls process.exit.
export const EXIT = { ok: 0, expectationFailed: 1, badInput: 2, labFailed: 3 } as const;

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
