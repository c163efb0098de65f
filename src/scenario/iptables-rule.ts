// What an iptables rule may contain, and the one tokenizer that turns it into iptables'
// argv (an `iptables` step) and into iptables-restore text (a scenario's firewall rules,
// and the rule lines of a whole iptables-save file).
//
// An allowlist, because iptables runs as root in the lab host and some of its arguments
// reach further than the lab's network:
// - `--modprobe PROGRAM` (short form `-M`) names a program for iptables to run. getopt_long
//   takes any unambiguous abbreviation (`--modp`, `--mod=/x`) and a short option's value may
//   be attached (`-M/x`), or hidden in a cluster (`-vM/x`). So: no `-M`, no long option that
//   is a prefix of `modprobe`, and a short option stands alone (`-p tcp`, never `-ptcp`).
// - iptables-restore reads its input line by line, and a line starting with `*`, `:`,
//   `COMMIT` or `#` is a directive: a newline inside a rule would inject such lines (a
//   `*raw` table of its own). So: one line, no control characters, and no word that looks
//   like a directive.
// - `-m NAME`, `-j NAME`, `-p NAME` make iptables load the shared object libxt_NAME.so from
//   its own folder: the name is a plain word (no `/`), never a path.
// - `-m bpf --object-pinned PATH` opens a pinned eBPF object by its path on the machine's
//   bpffs: refused, with every abbreviation of it.
// Everything else is iptables' to judge: the rule is loaded, and its refusal is bad input.

/** Where a rule may be written: a scenario (shell-like quotes) or an iptables-save file (iptables-restore's quotes). */
export type RuleSyntax = 'scenario' | 'restore';

export const TABLES = ['filter', 'nat', 'mangle', 'raw'] as const;
export type Table = (typeof TABLES)[number];

/** iptables-restore reads a line into a 10240-byte buffer; a scenario's rule stays well below. */
export const RULE_MAX_CHARS = 1024;

/** The characters of a word outside quotes. */
const BARE_CHAR = /[A-Za-z0-9_.:/,!=+@%-]/;
const BARE_WORD = /^[A-Za-z0-9_.:/,!=+@%-]+$/;
const BARE_TEXT = 'letters, digits and - _ . : / , ! = + @ %';
/** A name iptables turns into an extension's file name, or a chain name. */
const PLAIN_NAME = /^[A-Za-z0-9_.-]+$/;
const CHAIN = /^[A-Za-z0-9_.-]+$/;
const SCENARIO_COMMANDS = ['-A', '-I', '-D', '-F'];
const RESTORE_COMMANDS = ['-A', '-I', '-D', '-R', '-N', '-F', '-X', '-Z', '-P'];
/** Options whose value is loaded as an extension (or jumped to as a chain): their long names. */
const NAMED_VALUE_LONG = ['match', 'jump', 'goto', 'protocol'];
const NAMED_VALUE_SHORT = ['-m', '-j', '-g', '-p'];

export const RULE_HEAD_TEXT = `an iptables rule starting with -A, -I, -D or -F CHAIN (optionally after -t ${TABLES.join('|')})`;

/** Where in the text a problem is (0-based character offset) and what it is. */
export interface RuleProblem {
  offset: number;
  message: string;
}

export interface Word {
  text: string;
  offset: number;
  quoted: boolean;
}

/** A checked rule: its table and its arguments after `-t TABLE`. */
export interface Rule {
  table: Table;
  args: string[];
}

type Result<T> = { ok: T; problem?: undefined } | { ok?: undefined; problem: RuleProblem };

const hex = (c: string) => `U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;

function badChar(c: string, offset: number): RuleProblem | undefined {
  if (c === '\n' || c === '\r') {
    return { offset, message: 'a rule is one line: a newline would start a line of its own in iptables-restore (e.g. a *table or COMMIT)' };
  }
  const code = c.charCodeAt(0);
  if (code < 0x20 || code === 0x7f) return { offset, message: `control character ${hex(c)} is not allowed in a rule` };
  if (code > 0x7e) return { offset, message: `only ASCII characters may appear in a rule (found ${hex(c)})` };
  return undefined;
}

/**
 * Split a rule into words, like a shell without any expansion: words are separated by
 * spaces or tabs; "..." and (scenario syntax only) '...' keep spaces inside one word.
 * Inside "...", a backslash escapes only \" \\ and \' (what iptables-save writes; the
 * shell agrees on the first two). A quoted part ends its word: iptables-restore ends a
 * word at a closing quote where the shell would go on, so `"a"b` is refused, not guessed.
 */
export function tokenize(text: string, syntax: RuleSyntax = 'scenario'): Result<Word[]> {
  const words: Word[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    const start = i;
    let word = '';
    let quoted = false;
    while (i < text.length && text[i] !== ' ' && text[i] !== '\t') {
      const ch = text[i]!;
      const bad = badChar(ch, i);
      if (bad) return { problem: bad };
      if (ch === '"' || ch === "'") {
        if (ch === "'" && syntax === 'restore') {
          return { problem: { offset: i, message: "single quotes do not quote in iptables-restore: use double quotes" } };
        }
        const open = i++;
        for (;;) {
          if (i >= text.length) return { problem: { offset: open, message: `this ${ch === '"' ? 'double' : 'single'} quote is never closed` } };
          const q = text[i]!;
          const badQ = badChar(q, i);
          if (badQ) return { problem: badQ };
          if (q === ch) break;
          if (q === '\\' && ch === '"') {
            const next = text[i + 1];
            if (next !== '"' && next !== '\\' && next !== "'") {
              return { problem: { offset: i, message: 'inside "...", a backslash escapes only \\" \\\\ and \\\'' } };
            }
            word += next;
            i += 2;
            continue;
          }
          word += q;
          i++;
        }
        i++;
        quoted = true;
        if (i < text.length && text[i] !== ' ' && text[i] !== '\t') {
          return { problem: { offset: i, message: 'a closing quote must end its word (iptables-restore would split the word there)' } };
        }
        break;
      }
      if (!BARE_CHAR.test(ch)) {
        return { problem: { offset: i, message: `"${ch}" may appear only inside quotes; a word outside quotes is ${BARE_TEXT}` } };
      }
      word += ch;
      i++;
    }
    words.push({ text: word, offset: start, quoted });
  }
  return { ok: words };
}

/** Long option name of a `--name` or `--name=value` word. */
const longName = (w: string) => /^--([^=]*)/.exec(w)?.[1] ?? '';
const isPrefixOf = (name: string, full: string) => name.length > 0 && full.startsWith(name);

/** The words of a rule after its head, checked one by one. */
function wordProblem(words: Word[], i: number, syntax: RuleSyntax): RuleProblem | undefined {
  const w = words[i]!;
  const at = (message: string): RuleProblem => ({ offset: w.offset, message: `${JSON.stringify(w.text)}: ${message}` });
  if (/^[*:#]/.test(w.text) || w.text.toUpperCase() === 'COMMIT') {
    return at('a word starting with * : or # or the word COMMIT is an iptables-restore directive, not part of a rule');
  }
  if (w.text.startsWith('--')) {
    const name = longName(w.text);
    if (!/^[A-Za-z0-9][A-Za-z0-9-]*$/.test(name)) return at('a long option is -- then letters, digits and -, e.g. --dport');
    if (isPrefixOf(name, 'modprobe')) return at('--modprobe is not allowed, nor any abbreviation of it: it names a program for iptables to run');
    if (isPrefixOf(name, 'object-pinned')) return at('--object-pinned is not allowed, nor any abbreviation of it: it opens a file on the machine');
    if (isPrefixOf(name, 'table')) {
      return at(syntax === 'scenario' ? 'the table goes first: -t TABLE -A CHAIN ...' : 'the table of an iptables-restore rule is its *table line');
    }
    const eq = w.text.indexOf('=');
    if (NAMED_VALUE_LONG.some((n) => isPrefixOf(name, n))) {
      const value = eq >= 0 ? w.text.slice(eq + 1) : words[i + 1]?.text;
      if (value !== undefined && !PLAIN_NAME.test(value)) return at(`its value ${JSON.stringify(value)} must be a plain name (letters, digits, _ . -), never a path`);
    }
    return undefined;
  }
  if (w.text.startsWith('-')) {
    if (!/^-[A-Za-z0-9]$/.test(w.text)) {
      return at('a short option is one letter on its own (write -p tcp, not -ptcp; no clusters like -vM)');
    }
    if (w.text === '-M') return at('-M is --modprobe, which is not allowed: it names a program for iptables to run');
    if (w.text === '-t') {
      return at(syntax === 'scenario' ? 'the table goes first: -t TABLE -A CHAIN ...' : 'the table of an iptables-restore rule is its *table line');
    }
    if (NAMED_VALUE_SHORT.includes(w.text)) {
      const value = words[i + 1]?.text;
      if (value !== undefined && !PLAIN_NAME.test(value)) return at(`its value ${JSON.stringify(value)} must be a plain name (letters, digits, _ . -), never a path`);
    }
  }
  return undefined;
}

/** Check a rule and split it into its table and arguments. */
export function parseRule(text: string, syntax: RuleSyntax = 'scenario'): Result<Rule> {
  if (text.length > RULE_MAX_CHARS) return { problem: { offset: RULE_MAX_CHARS, message: `a rule is at most ${RULE_MAX_CHARS} characters` } };
  const t = tokenize(text, syntax);
  if (t.problem) return t;
  const words = t.ok;
  let table: Table = 'filter';
  let head = 0;
  if (syntax === 'scenario' && words[0]?.text === '-t' && !words[0].quoted) {
    const name = words[1]?.text ?? '';
    if (!(TABLES as readonly string[]).includes(name)) {
      return { problem: { offset: words[1]?.offset ?? text.length, message: `got the string ${JSON.stringify(text)}; expected ${RULE_HEAD_TEXT}` } };
    }
    table = name as Table;
    head = 2;
  }
  const commands = syntax === 'scenario' ? SCENARIO_COMMANDS : RESTORE_COMMANDS;
  const cmd = words[head];
  const chain = words[head + 1];
  if (!cmd || cmd.quoted || !commands.includes(cmd.text) || !chain || chain.quoted || !CHAIN.test(chain.text)) {
    const expected = syntax === 'scenario' ? RULE_HEAD_TEXT : `a rule line starting with ${RESTORE_COMMANDS.join(', ')} CHAIN`;
    return { problem: { offset: cmd?.offset ?? 0, message: `got the string ${JSON.stringify(text)}; expected ${expected}` } };
  }
  for (let i = head + 2; i < words.length; i++) {
    const problem = wordProblem(words, i, syntax);
    if (problem) return { problem };
  }
  return { ok: { table, args: words.slice(head).map((w) => w.text) } };
}

/** What is wrong with a scenario's rule, in words, or undefined (the schema's check). */
export function ruleProblem(text: string): string | undefined {
  const { problem } = parseRule(text);
  if (!problem) return undefined;
  // The head's own message already quotes the whole rule.
  return problem.message.startsWith('got the string') ? problem.message : `${problem.message} (at character ${problem.offset + 1} of the rule)`;
}

function checked(text: string): Rule {
  const r = parseRule(text);
  // The schema admitted it; failing here is a bug, not bad input.
  if (r.problem) throw new Error(`unchecked iptables rule ${JSON.stringify(text)}: ${r.problem.message}`);
  return r.ok;
}

/** The argv for `iptables` (after `iptables -w`) of a scenario's rule: its words, quotes removed. */
export function ruleArgv(text: string): string[] {
  const r = checked(text);
  return ['-t', r.table, ...r.args];
}

/** One word in iptables-restore's syntax: bare if it can be, else in double quotes. */
export function restoreWord(word: string): string {
  return BARE_WORD.test(word) ? word : `"${word.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * iptables-restore text for scenario rules, one *table section per table used (in the
 * order of first use), and for each line of that text the index of the rule it belongs to
 * (the table's first rule for its *table and COMMIT lines), so that iptables-restore's
 * "Error occurred at line: N" names the rule the user wrote.
 */
export function restoreText(rules: readonly string[]): { text: string; ruleOfLine: number[] } {
  const tables = new Map<Table, { index: number; args: string[] }[]>();
  rules.forEach((text, index) => {
    const r = checked(text);
    tables.set(r.table, [...(tables.get(r.table) ?? []), { index, args: r.args }]);
  });
  const lines: string[] = [];
  const ruleOfLine: number[] = [];
  const add = (line: string, index: number) => {
    lines.push(line);
    ruleOfLine.push(index);
  };
  for (const [table, rs] of tables) {
    add(`*${table}`, rs[0]!.index);
    for (const r of rs) add(r.args.map(restoreWord).join(' '), r.index);
    add('COMMIT', rs[0]!.index);
  }
  return { text: lines.map((l) => `${l}\n`).join(''), ruleOfLine };
}

/** The rule index that iptables-restore's error names, if it names a line of `restoreText`. */
export function refusedRule(stderr: string, ruleOfLine: readonly number[]): number | undefined {
  const m = /Error occurred at line: (\d+)/.exec(stderr);
  return m ? ruleOfLine[Number(m[1]) - 1] : undefined;
}

/** What iptables' stderr says is wrong, on one line (without its "Try `iptables -h'" advice). */
export function iptablesError(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/^Try `|^Error occurred at line/.test(l));
  return lines.join('; ') || stderr.trim();
}

/** A problem in a whole file: 1-based line and column. */
export interface LineProblem {
  line: number;
  col: number;
  message: string;
}

/**
 * Every problem of a whole iptables-save / iptables-restore file, each at its line and
 * column: the same rule checks as a scenario's rules (in iptables-restore's own quoting),
 * and only the directives iptables-restore reads (*table, :CHAIN POLICY [p:b], COMMIT, #).
 */
export function iptablesSaveProblems(text: string): LineProblem[] {
  const problems: LineProblem[] = [];
  let inTable = false;
  text.split('\n').forEach((line, i) => {
    const at = (offset: number, message: string) => problems.push({ line: i + 1, col: offset + 1, message });
    if (/^[ \t]*$/.test(line)) return;
    if (line.startsWith('#')) return;
    // A carriage return (a file saved with CRLF) or any control character, wherever it is.
    const bad = [...line].map((c, k) => badChar(c, k)).find((p) => p !== undefined);
    if (bad && !line.startsWith('-')) return at(bad.offset, bad.message);
    if (line.startsWith('*')) {
      const table = line.slice(1).trimEnd();
      inTable = true; // even an unknown one: its lines are still checked, not all refused for it
      if (!(TABLES as readonly string[]).includes(table) && table !== 'security') at(1, `unknown table ${JSON.stringify(table)}: one of ${[...TABLES, 'security'].join(', ')}`);
      return;
    }
    if (line.startsWith(':')) {
      if (!inTable) return at(0, 'a chain line before any *table line');
      if (!/^:[A-Za-z0-9_.-]+ (ACCEPT|DROP|-)( \[\d+:\d+\])?[ \t]*$/.test(line)) return at(0, 'expected :CHAIN POLICY [packets:bytes] with POLICY ACCEPT, DROP or -');
      return;
    }
    if (line.trimEnd() === 'COMMIT') {
      if (!inTable) return at(0, 'COMMIT without a *table line before it');
      inTable = false;
      return;
    }
    if (line.startsWith('-')) {
      if (!inTable) return at(0, 'a rule before any *table line');
      const r = parseRule(line, 'restore');
      if (r.problem) at(r.problem.offset, r.problem.message);
      return;
    }
    at(0, 'not a line iptables-restore reads: expected *table, :CHAIN POLICY, a rule (-A CHAIN ...), COMMIT or a # comment');
  });
  return problems;
}
