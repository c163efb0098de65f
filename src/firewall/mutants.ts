// Mutation testing of a ruleset: small, plausible mistakes made one at a time in the user's
// file (a verdict flipped, a REJECT of the wrong kind, a rule deleted, a port or an address
// off by one, two neighbouring rules swapped, a chain policy flipped), each run as the same
// matrix (mutant-run.ts). A mutant some row notices is killed; one no row notices survived:
// a mistake the matrix would let through, and a row it is missing. Rules that only log are
// never mutated (no verdict depends on them).
//
// Every mutant is an edit of exactly the characters of its rule(s) in the file (rules.ts),
// so it is loaded by the same tool, and reported at the user's own FILE:LINE.
import { basename } from 'node:path';
import type { PlannedRow } from './expectations.js';
import type { RuleEntry, RuleModel } from './rules.js';
import type { Ruleset } from './ruleset.js';

export type MutationKind = 'verdict' | 'delete' | 'port' | 'address' | 'swap' | 'policy';

export interface Mutant {
  id: number;
  kind: MutationKind;
  /** the line the change is on (a swap: the first of the two rules) */
  line: number;
  /** in words: "-j ACCEPT → -j DROP", "deleted", "swapped with line 20", ... */
  change: string;
  /** the rules it changes (rules.ts ids); none for a policy */
  rules: number[];
  /** the policy it flips, as "table chain" */
  policy?: string;
  /** whether only the rows that reached these rules (or policy) can notice (see selection in mutant-run.ts) */
  localToReached: boolean;
  /** a port mutant's new port, an address mutant's new network: packets that may match it now */
  newPort?: number;
  newNet?: { address: string; prefix: number };
  text: string;
}

export interface MutantResult {
  mutant: Mutant;
  status: 'killed' | 'survived' | 'refused';
  /** rows that failed against the mutant */
  killedBy: { row: PlannedRow; observed: string }[];
  /** the rows run against it; none when no row reaches what it changes */
  rowsRun: number[];
  /** the tool's refusal, for a mutant it would not load */
  refusal?: string;
}

export interface MutantReport {
  results: MutantResult[];
  seconds: number;
  labs: number;
  /** why no mutant was run */
  skipped?: string;
}

const splice = (text: string, start: number, end: number, insert: string) => text.slice(0, start) + insert + text.slice(end);

/** Replace the first match of `re` inside the rule's characters. */
function editRule(text: string, r: RuleEntry, re: RegExp, to: (m: RegExpExecArray) => string): string | undefined {
  const body = text.slice(r.start, r.end);
  const m = re.exec(body);
  if (!m) return undefined;
  return splice(text, r.start + m.index, r.start + m.index + m[0].length, to(m));
}

/** The verdict changes a rule's kind of verdict allows: [pattern, replacement, words]. */
function verdictEdits(format: Ruleset['format'], r: RuleEntry): [RegExp, string, string][] {
  const tcp = format === 'iptables' ? /(^|\s)(-p|--protocol)\s+tcp\b/.test(r.text) : /\btcp\b/.test(r.text);
  if (format === 'iptables') {
    const target = /(-j|--jump)\s+(ACCEPT|DROP|REJECT)((\s+--reject-with\s+\S+)?)/;
    switch (r.verdict) {
      case 'accept': return [[target, '-j DROP', 'ACCEPT → DROP']];
      case 'drop': return [[target, '-j ACCEPT', 'DROP → ACCEPT']];
      case 'reject-reset': return [[target, '-j DROP', 'REJECT tcp-reset → DROP'], [target, '-j REJECT --reject-with icmp-port-unreachable', 'REJECT tcp-reset → icmp-port-unreachable']];
      case 'reject-icmp': return [...(tcp ? [[target, '-j REJECT --reject-with tcp-reset', 'REJECT icmp → tcp-reset'] as [RegExp, string, string]] : []), [target, '-j DROP', 'REJECT icmp → DROP']];
      default: return [];
    }
  }
  const last = (w: string) => new RegExp(`\\b${w}\\s*$`);
  const reject = /\breject(\s+with\s+(tcp\s+reset|icmpx?\s+(type\s+)?\S+|icmpv6\s+(type\s+)?\S+))?\s*$/;
  switch (r.verdict) {
    case 'accept': return [[last('accept'), 'drop', 'accept → drop']];
    case 'drop': return [[last('drop'), 'accept', 'drop → accept']];
    case 'reject-reset': return [[reject, 'drop', 'reject with tcp reset → drop'], [reject, 'reject', 'reject with tcp reset → reject (ICMP port unreachable)']];
    case 'reject-icmp': return [...(tcp ? [[reject, 'reject with tcp reset', 'reject (ICMP) → reject with tcp reset'] as [RegExp, string, string]] : []), [reject, 'drop', 'reject (ICMP) → drop']];
    default: return [];
  }
}

const PORT = { iptables: /(--dports?|--sports?|--destination-ports?|--source-ports?|--ports)(\s+(?:!\s+)?)(\d+)/, nftables: /\b(dport|sport)(\s+(?:!=\s*)?(?:\{\s*)?)(\d+)/ };
const ADDR = { iptables: /(^|\s)(-s|-d|--source|--destination)(\s+(?:!\s+)?)(\d+\.\d+\.\d+\.\d+)(\/(\d+))?/, nftables: /()\b(saddr|daddr)(\s+(?:!=\s*)?(?:\{\s*)?)(\d+\.\d+\.\d+\.\d+)(\/(\d+))?/ };

/** Another network of the same size: the last octet the prefix covers, plus one (10.0.1.0/24 → 10.0.2.0/24). */
export function otherAddress(addr: string, prefix: number): string {
  const o = addr.split('.').map(Number);
  const i = Math.max(0, Math.ceil(prefix / 8) - 1);
  o[i] = (o[i]! + 1) % 256;
  return o.join('.');
}

/** The ports a rule's destination-port match names, as [from, to] ranges; undefined when it has none (or negates it). */
function dports(format: Ruleset['format'], text: string): [number, number][] | undefined {
  const m = format === 'iptables' ? /(?:^|\s)(!\s+)?--(?:dports?|destination-ports?)\s+(!\s+)?(\S+)/.exec(text) : /\bdport\s+(!=\s*)?()(\{[^}]*\}|\S+)/.exec(text);
  if (!m || m[1] || m[2]) return undefined;
  const parts = m[3]!.replace(/[{}]/g, '').split(',').map((x) => x.trim()).filter((x) => x !== '');
  const ranges = parts.map((p) => p.split(format === 'iptables' ? ':' : '-').map(Number));
  if (ranges.some((r) => r.some((n) => !Number.isInteger(n)))) return undefined;
  return ranges.map((r) => [r[0]!, r[r.length - 1]!]);
}

/** The conntrack states a rule asks for; undefined when none (or negated). */
function ctStates(format: Ruleset['format'], text: string): string[] | undefined {
  const m = format === 'iptables' ? /(?:^|\s)(!\s+)?--(?:ct)?state\s+(\S+)/.exec(text) : /\bct state\s+(!=\s*)?(\{[^}]*\}|\S+)/.exec(text);
  if (!m || m[1]) return undefined;
  return m[2]!.replace(/[{}]/g, '').split(',').map((x) => x.trim().toLowerCase()).filter((x) => x !== '');
}

/** Whether a rule asks for a SYN (a new connection's first segment) or for anything but one. */
function synMatch(format: Ruleset['format'], text: string): 'syn' | 'not-syn' | undefined {
  if (format === 'iptables') {
    if (/(?:^|\s)!\s+--syn\b/.test(text)) return 'not-syn';
    if (/(?:^|\s)--syn\b/.test(text)) return 'syn';
    return undefined;
  }
  const m = /tcp flags & \(syn \| ack\) (==|!=) syn\b/.exec(text);
  return m ? (m[1] === '==' ? 'syn' : 'not-syn') : undefined;
}

/**
 * A swap of two neighbouring rules changes the verdict only for a packet that matches both
 * (one that matches one of them meets the same rule first either way), and only if their
 * verdicts differ. So a swap is an equivalent mutant, no row could ever kill, when both give
 * the same final verdict, or their matches cannot meet: different destination ports,
 * conntrack states or SYN-ness. Such swaps are not made.
 */
export function swapIsEquivalent(format: Ruleset['format'], a: RuleEntry, b: RuleEntry): boolean {
  const final = ['accept', 'drop'];
  if (a.verdict === b.verdict && (final.includes(a.verdict) || a.verdict.startsWith('reject'))) {
    const tail = (t: string) => (format === 'iptables' ? /-j\s+.*$/.exec(t)?.[0] : /\b(accept|drop|reject.*)$/.exec(t)?.[0]);
    if (tail(a.text) === tail(b.text)) return true;
  }
  const pa = dports(format, a.text);
  const pb = dports(format, b.text);
  if (pa && pb && !pa.some(([l1, h1]) => pb.some(([l2, h2]) => l1 <= h2 && l2 <= h1))) return true;
  const sa = ctStates(format, a.text);
  const sb = ctStates(format, b.text);
  if (sa && sb && !sa.some((x) => sb.includes(x))) return true;
  const ya = synMatch(format, a.text);
  const yb = synMatch(format, b.text);
  return ya !== undefined && yb !== undefined && ya !== yb;
}

export function mutantsOf(model: RuleModel, ruleset: Ruleset): Mutant[] {
  const text = ruleset.text;
  const out: Omit<Mutant, 'id'>[] = [];
  const add = (m: Omit<Mutant, 'id'> | undefined) => {
    if (m && m.text !== text && !out.some((o) => o.text === m.text)) out.push(m);
  };
  const rules = model.rules.filter((r) => r.verdict !== 'log');
  for (const r of rules) {
    for (const [re, to, words] of verdictEdits(model.format, r)) {
      const t = editRule(text, r, re, () => to);
      if (t) add({ kind: 'verdict', line: r.line, change: words, rules: [r.id], localToReached: true, text: t });
    }
    // a deleted rule: its line goes (iptables-restore reads lines), or its characters (nft)
    const lineEnd = text.indexOf('\n', r.end);
    const del = model.format === 'iptables' ? splice(text, r.start, lineEnd < 0 ? text.length : lineEnd + 1, '') : splice(text, r.start, r.end, '');
    add({ kind: 'delete', line: r.line, change: 'rule deleted', rules: [r.id], localToReached: true, text: del });
    const port = editRule(text, r, PORT[model.format], (m) => `${m[1]}${m[2]}${Number(m[3]) === 65535 ? 65534 : Number(m[3]) + 1}`);
    const pm = PORT[model.format].exec(r.text);
    const newPort = pm && (Number(pm[3]) === 65535 ? 65534 : Number(pm[3]) + 1);
    if (port && pm) add({ kind: 'port', line: r.line, change: `port ${pm[3]} → ${newPort}`, rules: [r.id], localToReached: false, newPort: newPort!, text: port });
    const am = ADDR[model.format].exec(r.text);
    if (am) {
      const prefix = am[6] ? Number(am[6]) : 32;
      if (prefix > 0) {
        const to = otherAddress(am[4]!, prefix);
        const t = editRule(text, r, ADDR[model.format], (m) => `${m[1]}${m[2]}${m[3]}${to}${m[5] ?? ''}`);
        if (t) add({ kind: 'address', line: r.line, change: `address ${am[4]}${am[5] ?? ''} → ${to}${am[5] ?? ''}`, rules: [r.id], localToReached: false, newNet: { address: to, prefix }, text: t });
      }
    }
  }
  // two neighbouring rules of a chain swapped (appended ones: their order is the file's)
  for (let i = 0; i + 1 < model.rules.length; i++) {
    const a = model.rules[i]!;
    const b = model.rules[i + 1]!;
    if (a.table !== b.table || a.chain !== b.chain || a.verdict === 'log' || b.verdict === 'log' || a.insertAt !== undefined || b.insertAt !== undefined) continue;
    if (swapIsEquivalent(model.format, a, b)) continue;
    const swapped = text.slice(0, a.start) + text.slice(b.start, b.end) + text.slice(a.end, b.start) + text.slice(a.start, a.end) + text.slice(b.end);
    add({ kind: 'swap', line: a.line, change: `swapped with the next rule (line ${b.line})`, rules: [a.id, b.id], localToReached: true, text: swapped });
  }
  for (const p of model.policies) {
    const lower = p.policy.toLowerCase();
    if (lower !== 'accept' && lower !== 'drop') continue;
    const flipped = lower === 'accept' ? 'drop' : 'accept';
    const to = p.policy === p.policy.toUpperCase() ? flipped.toUpperCase() : flipped;
    add({ kind: 'policy', line: p.line, change: `${p.chain} policy ${p.policy} → ${to}`, rules: [], policy: `${p.table} ${p.chain}`, localToReached: true, text: splice(text, p.start, p.end, to) });
  }
  return out.map((m, id) => ({ id, ...m }));
}

/** The rules' text of a mutant for people: the first rule's text. */
function ruleText(model: RuleModel | undefined, m: Mutant): string {
  const r = model?.rules.find((x) => x.id === m.rules[0]);
  return r ? r.text : '';
}

export function scoreOf(rep: MutantReport): { killed: number; survived: number; refused: number; percent: number } {
  const killed = rep.results.filter((r) => r.status === 'killed').length;
  const survived = rep.results.filter((r) => r.status === 'survived').length;
  const refused = rep.results.filter((r) => r.status === 'refused').length;
  return { killed, survived, refused, percent: killed + survived === 0 ? 100 : (100 * killed) / (killed + survived) };
}

export function renderMutants(file: string, rep: MutantReport, model?: RuleModel): string {
  if (rep.skipped) return `Mutants: not run: ${rep.skipped}`;
  const name = basename(file);
  const s = scoreOf(rep);
  const out = [`Mutants: ${s.killed} killed, ${s.survived} survived${s.refused ? `, ${s.refused} refused by the tool` : ''}: mutation score ${s.percent.toFixed(0)}% (${rep.results.length} mutants, ${rep.labs} labs, ${rep.seconds.toFixed(1)} s)`];
  for (const r of rep.results) {
    const at = `${name}:${r.mutant.line}`;
    const change = r.mutant.change;
    // a survivor shows its rule: it is the one to write a row for
    const what = r.status === 'survived' && ruleText(model, r.mutant) ? `${change} in ${ruleText(model, r.mutant)}` : change;
    if (r.status === 'killed') out.push(`  killed    ${at}  ${what}  — by ${r.killedBy.map((k) => `row ${k.row.index} ${k.row.name} (${k.observed})`).join(', ')}`);
    else if (r.status === 'refused') out.push(`  refused   ${at}  ${what}  — ${r.refusal ?? ''}`);
    else {
      const why = r.rowsRun.length > 0 ? 'no row noticed: add a row whose outcome this change alters'
        : r.mutant.policy ? 'no row\'s packets reach this policy: add a row that ends there' : 'no row reaches this rule: add a row whose packets match it';
      out.push(`  SURVIVED  ${at}  ${what}  — ${why}`);
    }
  }
  return out.join('\n');
}

export function mutantsJson(file: string, rep: MutantReport) {
  const s = scoreOf(rep);
  return {
    mutationScore: { ...s, percent: Math.round(s.percent * 10) / 10, seconds: Math.round(rep.seconds * 100) / 100, ...(rep.skipped ? { skipped: rep.skipped } : {}) },
    mutants: rep.results.map((r) => ({
      file, line: r.mutant.line, kind: r.mutant.kind, change: r.mutant.change, status: r.status,
      killedBy: r.killedBy.map((k) => ({ row: k.row.index, name: k.row.name, expected: k.row.expect, observed: k.observed })),
      rowsRun: r.rowsRun,
      ...(r.refusal ? { refusal: r.refusal } : {}),
    })),
  };
}

export { runMutants } from './mutant-run.js';
