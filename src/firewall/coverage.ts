// From the traced packets (trace.ts): which rule decided each row, by which chain path, and
// which rules of the file the rows' packets reached at all (coverage). netfilter traces a
// rule when a packet matches it (a rule it is checked against and does not match leaves no
// event), so "reached" is "matched by a packet of the row": a rule no row reaches is one no
// row's verdict depends on.
import { basename } from 'node:path';
import { ADDRESS } from '../vocabulary.js';
import type { PlannedRow } from './expectations.js';
import type { Judgement } from './judge.js';
import type { PolicyEntry, RuleEntry, RuleModel } from './rules.js';
import type { RuleTraceResult, TraceEvent, TracedPacket } from './trace.js';

export interface Decision {
  file: string;
  /** undefined for a built-in chain's policy the file never names */
  line?: number;
  text: string;
  /** the chains the packet went through to the deciding rule, base chain first */
  path: string[];
  /** accept, drop, ... as netfilter said */
  verdict: string;
  policy: boolean;
}

export interface RowTrace {
  decidedBy?: Decision;
  /** rule ids (rules.ts) and policies ("table chain") any packet of the row reached */
  rules: Set<number>;
  policies: Set<string>;
}

const BUILTIN = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);
const FINAL = new Set(['drop', 'queue', 'stolen']);

export function rowPackets(row: PlannedRow, localPort: number, packets: readonly TracedPacket[]): { out: TracedPacket[]; all: TracedPacket[] } {
  const src = ADDRESS[row.from];
  const out = packets.filter((p) => p.src === src && p.sport === localPort && p.dport === row.port);
  const back = packets.filter((p) => p.dst === src && p.dport === localPort && p.sport === row.port);
  return { out, all: [...out, ...back] };
}

/** The packet the judge decided the row by: its SYN, or an idle row's first data segment. */
function triggerOf(out: TracedPacket[], phase: Judgement['phase']): TracedPacket | undefined {
  const SYN = 2;
  const ACK = 16;
  if (phase === 'connect') return out.find((p) => (p.flags & (SYN | ACK)) === SYN);
  const rest = out.filter((p) => !(p.flags & SYN));
  if (rest.length === 0) return undefined;
  // the connection's segments all carry the same options: the shortest is a bare ACK, a longer one carries data
  const bare = Math.min(...rest.map((p) => p.length));
  return rest.find((p) => p.length > bare) ?? rest.find((p) => p.flags & 8);
}

/** Each event with the chain path that led to it (jumps pushed, returns popped, a base chain starts anew). */
function withPaths(model: RuleModel, events: TraceEvent[]): { e: TraceEvent; path: string[]; hook?: string }[] {
  let stack: string[] = [];
  let hook: string | undefined;
  return events.map((e) => {
    const base = model.format === 'iptables' ? BUILTIN.has(e.chain) : model.hooks.has(`${e.table} ${e.chain}`);
    const idx = stack.lastIndexOf(e.chain);
    if (idx >= 0) stack = stack.slice(0, idx + 1);
    else if (base || stack.length === 0) {
      stack = [e.chain];
      hook = model.format === 'iptables' ? e.chain.toLowerCase() : model.hooks.get(`${e.table} ${e.chain}`);
    } else stack.push(e.chain);
    const path = [...stack];
    const j = /^(jump|goto) (\S+)/i.exec(e.verdict);
    if (j) {
      if (j[1]!.toLowerCase() === 'goto') stack.pop();
      stack.push(j[2]!);
    }
    return { e, path, hook };
  });
}

export function decisionOf(model: RuleModel, file: string, events: TraceEvent[]): Decision | undefined {
  const steps = withPaths(model, events);
  const terminal = steps.filter(({ e }) => FINAL.has(e.verdict) || e.verdict === 'accept');
  const pick =
    terminal.find(({ e }) => FINAL.has(e.verdict)) ??
    [...terminal].reverse().find(({ hook }) => hook === 'forward') ??
    terminal[terminal.length - 1];
  if (!pick) return undefined;
  const { e, path } = pick;
  const name = file;
  if (e.kind === 'policy') {
    const p = e.policy;
    const text = `${e.chain} policy ${model.format === 'iptables' ? e.verdict.toUpperCase() : e.verdict}`;
    return { file: name, ...(p ? { line: p.line } : {}), text, path, verdict: e.verdict, policy: true };
  }
  return { file: name, ...(e.rule ? { line: e.rule.line } : {}), text: e.rule?.text ?? e.text ?? '?', path, verdict: e.verdict, policy: false };
}

export function traceRows(model: RuleModel, file: string, rows: readonly { row: PlannedRow; localPort: number; judgement: Judgement }[], trace: RuleTraceResult): Map<number, RowTrace> {
  const out = new Map<number, RowTrace>();
  for (const { row, localPort, judgement } of rows) {
    const { out: outbound, all: tcp } = rowPackets(row, localPort, trace.packets);
    // the firewall's ICMP errors: the rows the judge saw answered by one (all rows, if none was: no row is left out)
    const icmpRows = rows.filter((r) => r.judgement.observed === 'unreachable');
    const icmp = icmpRows.length === 0 || judgement.observed === 'unreachable' ? trace.packets.filter((p) => p.icmp) : [];
    const all = [...tcp, ...icmp];
    const rules = new Set<number>();
    const policies = new Set<string>();
    for (const p of all) for (const e of p.events) {
      if (e.rule) rules.add(e.rule.id);
      if (e.policy) policies.add(`${e.policy.table} ${e.policy.chain}`);
    }
    const trigger = triggerOf(outbound, judgement.phase);
    const decidedBy = trigger ? decisionOf(model, file, trigger.events) : undefined;
    out.set(row.index, { ...(decidedBy ? { decidedBy } : {}), rules, policies });
  }
  return out;
}

export interface RuleCoverage {
  rule: RuleEntry;
  rows: PlannedRow[];
}

export interface Coverage {
  rules: RuleCoverage[];
  policies: { policy: PolicyEntry; rows: PlannedRow[] }[];
  reached: number;
  total: number;
  /** reached / total, in percent (100 for a ruleset without rules) */
  percent: number;
}

export function coverageOf(model: RuleModel, rows: readonly PlannedRow[], traces: Map<number, RowTrace>): Coverage {
  const rules = model.rules.map((rule) => ({ rule, rows: rows.filter((r) => traces.get(r.index)?.rules.has(rule.id)) }));
  const policies = model.policies.map((policy) => ({ policy, rows: rows.filter((r) => traces.get(r.index)?.policies.has(`${policy.table} ${policy.chain}`)) }));
  const reached = rules.filter((r) => r.rows.length > 0).length;
  return { rules, policies, reached, total: rules.length, percent: rules.length === 0 ? 100 : (100 * reached) / rules.length };
}

export const decisionText = (d: Decision): string => `${d.line !== undefined ? `${basename(d.file)}:${d.line}` : basename(d.file)} ${d.text}${d.path.length > 1 ? `  [${d.path.join(' → ')}]` : ''}`;

export function renderCoverage(file: string, c: Coverage): string {
  const name = basename(file);
  const out = [`Coverage: ${c.reached} of ${c.total} rules reached by a row (${c.percent.toFixed(0)}%)`];
  for (const { rule, rows } of c.rules) {
    const by = rows.length > 0 ? `rows ${rows.map((r) => r.index).join(', ')}` : 'NOT REACHED';
    out.push(`  ${`${name}:${rule.line}`.padEnd(name.length + 5)} ${by.padEnd(16)} ${rule.text}`);
  }
  for (const { policy, rows } of c.policies) {
    if (rows.length > 0) out.push(`  ${`${name}:${policy.line}`.padEnd(name.length + 5)} ${`rows ${rows.map((r) => r.index).join(', ')}`.padEnd(16)} ${policy.chain} policy ${policy.policy}`);
  }
  const unreached = c.rules.filter((r) => r.rows.length === 0);
  if (unreached.length > 0) {
    out.push('', `Rules no row reaches (${unreached.length}): add a row whose packets match each, or remove the rule`);
    for (const { rule } of unreached) out.push(`  ${name}:${rule.line} ${rule.text}`);
  }
  return out.join('\n');
}

export function coverageJson(file: string, c: Coverage) {
  return {
    coverage: { reached: c.reached, total: c.total, percent: Math.round(c.percent * 10) / 10 },
    rules: c.rules.map(({ rule, rows }) => ({ file, line: rule.line, text: rule.text, table: rule.table, chain: rule.chain, rows: rows.map((r) => r.index) })),
    policies: c.policies.map(({ policy, rows }) => ({ file, line: policy.line, chain: policy.chain, policy: policy.policy, rows: rows.map((r) => r.index) })),
  };
}
