// The rules of the user's ruleset file, each with where it is written (FILE:LINE and its
// characters in the file), its table and chain, and what kind of verdict it gives: the
// common ground of rule tracing (trace.ts: a traced rule handle → a line of the file),
// coverage (coverage.ts) and mutants (mutants.ts: text edits of exactly these characters).
//
// Both forms are read as the tools read them, only far enough to find rule statements:
// - iptables-save: `*table`, `:CHAIN POLICY [p:b]`, `-A CHAIN ...` / `-I CHAIN [N] ...`, `COMMIT`.
// - nft: blocks `table [family] NAME { chain NAME { ... } }`, statements separated by newlines
//   or `;` (an anonymous set `{ 22, 80 }` may span lines, `\` continues a line), `# comments`,
//   `"strings"`, and top-level `add rule` / `insert rule` commands. In a chain, `type ...`,
//   `policy ...`, `comment ...`, `devices ...` are the chain's, everything else is a rule.
import type { RulesetFormat } from './ruleset.js';

export type VerdictKind = 'accept' | 'drop' | 'reject-reset' | 'reject-icmp' | 'jump' | 'log' | 'other';

export interface RuleEntry {
  /** 0, 1, ... in file order (= the order the tool creates them) */
  id: number;
  /** iptables: filter, nat, ...; nft: "inet gateway" */
  table: string;
  chain: string;
  /** 1-based line of the rule's first character */
  line: number;
  /** [start, end) of the rule's characters in the file */
  start: number;
  end: number;
  /** the rule as written (whitespace runs folded to one space) */
  text: string;
  verdict: VerdictKind;
  /** iptables -I: the position asked for (1-based); undefined for an append */
  insertAt?: number;
}

export interface PolicyEntry {
  table: string;
  chain: string;
  line: number;
  /** [start, end) of the policy word (DROP, accept, ...) in the file */
  start: number;
  end: number;
  policy: string;
}

export interface RuleModel {
  format: RulesetFormat;
  rules: RuleEntry[];
  policies: PolicyEntry[];
  /** nft base chains: "table chain" → hook (forward, input, ...) */
  hooks: Map<string, string>;
}

export const chainKey = (table: string, chain: string): string => `${table} ${chain}`;

/** How a rule ends: its verdict, told from its text. Logging-only rules are never mutated. */
export function verdictOf(format: RulesetFormat, text: string): VerdictKind {
  if (format === 'iptables') {
    const target = /(?:^|\s)(?:-j|--jump)\s+(\S+)/.exec(text)?.[1];
    if (/(?:^|\s)(?:-g|--goto)\s+\S+/.test(text)) return 'jump';
    if (target === 'ACCEPT') return 'accept';
    if (target === 'DROP') return 'drop';
    if (target === 'REJECT') return /--reject-with\s+tcp-reset\b/.test(text) ? 'reject-reset' : 'reject-icmp';
    if (target === 'LOG' || target === 'NFLOG' || target === 'ULOG') return 'log';
    if (target && /^[A-Za-z0-9_.-]+$/.test(target) && target !== 'RETURN' && target.toUpperCase() !== target) return 'jump';
    if (target && !['RETURN', 'MASQUERADE', 'SNAT', 'DNAT', 'REDIRECT', 'MARK', 'CONNMARK', 'CT', 'TRACE', 'NOTRACK', 'TCPMSS', 'TOS', 'DSCP', 'TTL', 'CLASSIFY', 'NFQUEUE', 'QUEUE', 'SET', 'AUDIT', 'CHECKSUM', 'TPROXY', 'SECMARK', 'CONNSECMARK', 'HMARK', 'IDLETIMER', 'LED', 'NETMAP', 'RATEEST', 'SYNPROXY', 'TEE'].includes(target)) return 'jump';
    return 'other';
  }
  const bare = text.replace(/"[^"]*"/g, '""');
  if (/\breject\s+with\s+tcp\s+reset\b/.test(bare)) return 'reject-reset';
  if (/\breject\b/.test(bare)) return 'reject-icmp';
  if (/\b(jump|goto)\s+\S+/.test(bare)) return 'jump';
  if (/\baccept\s*$/.test(bare)) return 'accept';
  if (/\bdrop\s*$/.test(bare)) return 'drop';
  if (/^(?:.*\s)?log\b/.test(bare) && !/\b(accept|drop|queue|return|masquerade|snat|dnat|redirect)\b/.test(bare)) return 'log';
  return 'other';
}

const lineStarts = (text: string): number[] => {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') starts.push(i + 1);
  return starts;
};

function lineOf(starts: number[], offset: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo + 1;
}

export function ruleModel(format: RulesetFormat, text: string): RuleModel {
  return format === 'iptables' ? iptablesModel(text) : nftModel(text);
}

function iptablesModel(text: string): RuleModel {
  const rules: RuleEntry[] = [];
  const policies: PolicyEntry[] = [];
  let table = 'filter';
  let offset = 0;
  text.split('\n').forEach((raw, i) => {
    const lineStart = offset;
    offset += raw.length + 1;
    const line = raw.replace(/\s+$/, '');
    const lead = line.length - line.trimStart().length;
    const t = line.trim();
    if (t.startsWith('*')) table = t.slice(1);
    const pol = /^:(\S+)\s+(\S+)/.exec(t);
    if (pol && pol[2] !== '-') {
      const at = lineStart + lead + 1 + pol[1]!.length + t.slice(1 + pol[1]!.length).search(/\S/);
      policies.push({ table, chain: pol[1]!, line: i + 1, start: at, end: at + pol[2]!.length, policy: pol[2]! });
    }
    // (iptables-save -c puts each rule's counters first: [packets:bytes] -A ...)
    const cmd = /^(?:\[\d+:\d+\]\s+)?(-A|--append|-I|--insert)\s+(\S+)(?:\s+(\d+)(?=\s))?/.exec(t);
    if (!cmd) return;
    const insert = cmd[1] === '-I' || cmd[1] === '--insert';
    rules.push({
      id: rules.length, table, chain: cmd[2]!, line: i + 1, start: lineStart + lead, end: lineStart + line.length,
      text: t.replace(/\s+/g, ' '), verdict: verdictOf('iptables', t),
      ...(insert ? { insertAt: cmd[3] ? Number(cmd[3]) : 1 } : {}),
    });
  });
  return { format: 'iptables', rules, policies, hooks: new Map() };
}

interface Block {
  kind: string;
  table?: string;
  chain?: string;
}

const BLOCK_KINDS = new Set(['table', 'chain', 'set', 'map', 'flowtable', 'counter', 'quota', 'ct', 'limit', 'secmark', 'synproxy', 'tunnel']);
const FAMILIES = new Set(['ip', 'ip6', 'inet', 'arp', 'bridge', 'netdev']);

/** Statements of an nft file with their block, in file order. */
function nftModel(text: string): RuleModel {
  const starts = lineStarts(text);
  const rules: RuleEntry[] = [];
  const policies: PolicyEntry[] = [];
  const hooks = new Map<string, string>();
  const stack: Block[] = [];
  let stmtStart = -1;
  let anon = 0;
  let inString = false;

  const words = (s: string) => s.trim().split(/\s+/).filter((w) => w !== '');
  const tableName = (ws: string[]): string => (FAMILIES.has(ws[0]!) ? `${ws[0]} ${ws[1]}` : `ip ${ws[0]}`);

  const emit = (end: number) => {
    if (stmtStart < 0) return;
    const raw = text.slice(stmtStart, end);
    const start = stmtStart;
    stmtStart = -1;
    const stmt = raw.trim();
    if (stmt === '') return;
    const top = stack[stack.length - 1];
    const ws = words(stmt.replace(/\\\n/g, ' '));
    const folded = ws.join(' ');
    if (top?.kind === 'chain') {
      if (/^(type|comment|devices|device|priority)\b/.test(folded)) {
        const hook = /\bhook\s+(\S+)/.exec(folded)?.[1];
        if (hook) hooks.set(chainKey(top.table!, top.chain!), hook);
        return;
      }
      if (ws[0] === 'policy') {
        const word = ws[1]!.replace(/;$/, '');
        const at = start + raw.indexOf(word, raw.indexOf('policy') + 6);
        policies.push({ table: top.table!, chain: top.chain!, line: lineOf(starts, at), start: at, end: at + word.length, policy: word });
        return;
      }
      const s = start + raw.search(/\S/);
      rules.push({ id: rules.length, table: top.table!, chain: top.chain!, line: lineOf(starts, s), start: s, end: s + stmt.length, text: folded, verdict: verdictOf('nftables', folded) });
      return;
    }
    if (stack.length === 0 && (ws[0] === 'add' || ws[0] === 'insert') && ws[1] === 'rule') {
      const fam = FAMILIES.has(ws[2]!);
      const table = fam ? `${ws[2]} ${ws[3]}` : `ip ${ws[2]}`;
      const chain = fam ? ws[4]! : ws[3]!;
      const s = start + raw.search(/\S/);
      rules.push({ id: rules.length, table, chain, line: lineOf(starts, s), start: s, end: s + stmt.length, text: folded, verdict: verdictOf('nftables', folded) });
    }
  };

  const open = (at: number) => {
    const head = stmtStart >= 0 ? words(text.slice(stmtStart, at)) : [];
    stmtStart = -1;
    let ws = head;
    if (['add', 'create', 'insert', 'replace'].includes(ws[0]!)) ws = ws.slice(1);
    const kind = ws[0] ?? '';
    const top = stack[stack.length - 1];
    if (kind === 'table') stack.push({ kind, table: tableName(ws.slice(1)) });
    else if (kind === 'chain' && top?.kind === 'table') stack.push({ kind, table: top.table, chain: ws[1] });
    else if (kind === 'chain') {
      // `add chain [family] TABLE CHAIN { ... }`
      const rest = ws.slice(1);
      const fam = FAMILIES.has(rest[0]!);
      stack.push({ kind, table: fam ? `${rest[0]} ${rest[1]}` : `ip ${rest[0]}`, chain: fam ? rest[2] : rest[1] });
    } else stack.push({ kind: kind || 'block' });
  };

  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '"') inString = false;
      continue;
    }
    if (c === '#') {
      // a comment runs to the end of the line (the statement, if any, ends there too)
      while (i < text.length && text[i] !== '\n') i++;
      i--;
      continue;
    }
    if (c === '"') {
      inString = true;
      if (stmtStart < 0) stmtStart = i;
      continue;
    }
    if (c === '\n') {
      const prev = text.slice(stmtStart < 0 ? i : stmtStart, i).replace(/#.*$/, '').trimEnd();
      if (anon === 0 && !prev.endsWith('\\')) emit(i);
      continue;
    }
    if (c === ';' && anon === 0) {
      emit(i);
      continue;
    }
    if (c === '{') {
      const head = stmtStart >= 0 ? words(text.slice(stmtStart, i)) : [];
      const first = ['add', 'create', 'insert', 'replace'].includes(head[0]!) ? head[1] : head[0];
      const inChain = stack[stack.length - 1]?.kind === 'chain';
      if (anon === 0 && !inChain && first !== undefined && BLOCK_KINDS.has(first) && (head[0] !== 'add' || head[1] !== 'rule')) {
        open(i);
        continue;
      }
      anon++;
      if (stmtStart < 0) stmtStart = i;
      continue;
    }
    if (c === '}') {
      if (anon > 0) {
        anon--;
        continue;
      }
      emit(i);
      stack.pop();
      continue;
    }
    if (stmtStart < 0 && !/\s/.test(c)) stmtStart = i;
  }
  emit(text.length);
  return { format: 'nftables', rules, policies, hooks };
}

/** Where a rule is, for people: "gateway.rules:19". */
export const where = (file: string, line: number): string => `${file}:${line}`;
