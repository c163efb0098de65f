// A gateway's ruleset as a file: its format recognised from its content, checked so that
// nothing in it can reach outside the lab, and loaded into the lab's firewall host only
// (iptables-restore or nft, inside that host's network namespace, never on the machine).
//
// What a ruleset file may not do, because the tool that loads it runs as root:
// - nft `include "PATH"` reads any file the process can read, and nft echoes the lines it
//   cannot parse: `include "/etc/passwd"` prints the machine's passwd lines as "syntax
//   errors". A network namespace does not stop it (only the network is separate). So no
//   `include` at all: a ruleset for the lab is one file.
// - iptables: everything iptables-rule.ts refuses (--modprobe and its abbreviations, paths as
//   extension names, injected restore directives), line by line (iptablesSaveProblems).
// - both: control characters (other than tab), and files over RULESET_MAX_BYTES.
import { InputError } from '../errors.js';
import type { Lab } from '../lab/backend.js';
import { readInputFile } from '../scenario/input-file.js';
import { iptablesError, iptablesSaveProblems, type LineProblem } from '../scenario/iptables-rule.js';

export const RULESET_FORMATS = ['iptables', 'nftables'] as const;
export type RulesetFormat = (typeof RULESET_FORMATS)[number];

/** A real gateway's ruleset is kilobytes; a megabyte is a mistake (or an attack on memory). */
export const RULESET_MAX_BYTES = 1024 * 1024;

export interface Ruleset {
  /** the user's file, as named (messages name it so) */
  file: string;
  format: RulesetFormat;
  text: string;
  /** an ip6tables-save file (--rules6, a scenario's firewall.ip6tables): iptables-save's
   * format, loaded by ip6tables-restore */
  ipv6?: true;
}

/** Read a regular file of at most `max` bytes (never a FIFO or a device, which could block or never end). */
/**
 * The format of a ruleset from its first statement: iptables-save output starts with
 * `*table` (or a `:CHAIN` / `-A` line); an nft ruleset with `table`, `flush`, `define`,
 * `add`, ... Undefined when neither.
 */
export function detectFormat(text: string): RulesetFormat | undefined {
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (/^(\*[a-z]+$|:[A-Za-z0-9_.-]+ |-[AINP] |COMMIT$)/.test(line)) return 'iptables';
    if (/^(table|flush|define|add|insert|create|delete|destroy|list|include|reset|replace)\b/.test(line)) return 'nftables';
    return undefined;
  }
  return undefined;
}

/** Every problem of an nft ruleset file that would reach outside the lab, at its line and column. */
export function nftProblems(text: string): LineProblem[] {
  const problems: LineProblem[] = [];
  text.split('\n').forEach((line, i) => {
    let inString = false;
    for (let k = 0; k < line.length; k++) {
      const c = line[k]!;
      const code = c.charCodeAt(0);
      if ((code < 0x20 && c !== '\t') || code === 0x7f) {
        problems.push({ line: i + 1, col: k + 1, message: `control character U+${code.toString(16).toUpperCase().padStart(4, '0')} is not allowed in a ruleset` });
        return;
      }
      if (c === '"') inString = !inString;
      if (inString) continue;
      if (c === '#') return; // a comment runs to the end of the line
      // A keyword starts where a word starts: not inside another word or a $variable.
      if (/[A-Za-z]/.test(c) && (k === 0 || !/[A-Za-z0-9_$.-]/.test(line[k - 1]!))) {
        const word = /^[A-Za-z0-9_-]+/.exec(line.slice(k))![0];
        if (word === 'include') {
          problems.push({ line: i + 1, col: k + 1, message: 'include is not allowed: nft would read that file on this machine (and echo its lines in errors); put the rules in this one file' });
        }
        k += word.length - 1;
      }
    }
  });
  return problems;
}

/** Read, recognise and check a ruleset file; bad input (exit 2, located) before any lab is built. */
export async function loadRuleset(file: string, format?: RulesetFormat | 'ip6tables'): Promise<Ruleset> {
  const text = await readInputFile(file, 'a ruleset', RULESET_MAX_BYTES);
  const detected = detectFormat(text);
  if (format === 'ip6tables' && detected === 'nftables') {
    throw new InputError('this is an nft ruleset; an nft ruleset covers IPv6 itself (an inet or ip6 table): give it as --rules, and --rules6 only for an ip6tables-save file', file, 1, 1);
  }
  const found = format === 'ip6tables' ? 'iptables' : format ?? detected;
  if (!found) {
    throw new InputError('cannot tell the format of this ruleset (iptables-save output starts with *filter, an nft ruleset with table or flush): name it with --format iptables|nftables', file, 1, 1);
  }
  const problems = found === 'iptables' ? iptablesSaveProblems(text) : nftProblems(text);
  if (problems.length > 0) {
    const [first, ...rest] = problems;
    const more = rest.map((p) => `\n${file}:${p.line}:${p.col}: ${p.message}`).join('');
    throw new InputError(`${first!.message}${more}`, file, first!.line, first!.col);
  }
  return { file, format: found, text, ...(format === 'ip6tables' ? { ipv6: true as const } : {}) };
}

/**
 * Load a checked ruleset into one lab host, whole, as its tool reads it from a file; a
 * ruleset the tool refuses is bad input, located at the line the tool names in the
 * user's own file (the text goes over stdin unchanged, so its line numbers are the file's).
 */
export async function applyRuleset(lab: Lab, host: 'firewall', r: Ruleset): Promise<string> {
  if (r.format === 'iptables') {
    const restore = r.ipv6 ? 'ip6tables-restore' : 'iptables-restore';
    const res = await lab.exec(host, [restore, '-w'], r.text);
    if (res.code === 0) return res.stdout;
    const line = /Error occurred at line: (\d+)/.exec(res.stderr)?.[1];
    throw new InputError(`${restore} refused ${line ? `line ${line}` : 'the ruleset'}: ${iptablesError(res.stderr)}`, r.file, line ? Number(line) : undefined);
  }
  // --echo --handle: each rule as it is added, with its handle, in file order (trace.ts)
  const res = await lab.exec(host, ['nft', '--echo', '--handle', '-f', '-'], r.text);
  if (res.code === 0) return res.stdout;
  // nft names its input /dev/stdin: FILE:LINE:COL-COL: Error: ..., then the line and a caret.
  const stderr = res.stderr.replaceAll('/dev/stdin', r.file).trimEnd();
  const prefix = new RegExp(`^${escapeRegExp(r.file)}:(\\d+):(\\d+)(?:-\\d+)?: `, 'm');
  const at = prefix.exec(stderr);
  const message = stderr.replace(prefix, '');
  throw new InputError(`nft refused the ruleset: ${message}`, r.file, at ? Number(at[1]) : undefined, at ? Number(at[2]) : undefined);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
