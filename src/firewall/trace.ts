// Which rule decided each packet of a row: netfilter traces every packet marked for it through
// every rule that matches it (FIREWALL-TEST facts), inside the lab's firewall host:
// - iptables (nf_tables backend): a TRACE rule in the raw table's PREROUTING (inserted first,
//   so that no rule of the user's raw table can end the packet before it is marked), read by
//   `xtables-monitor --trace`, which prints each rule as iptables-save would with its handle;
// - nftables: a table of rstlab's own, `ip rstlab_trace`, whose prerouting chain at priority
//   -350 (before conntrack and every usual chain) sets `meta nftrace`, read by
//   `nft -a monitor`, which prints each rule with its handle.
// Both match only the rows' packets: TCP from or to the rows' own client ports (matrix.ts
// rowPorts, the lab's own range), in prerouting (what crosses the firewall) and in output
// (what the firewall answers itself: a REJECT's RST, and its ICMP errors, which carry the
// row's ports only in their quote: they are told apart by the judge's own reading of the
// captures, coverage.ts). TRACE and nftrace only mark a packet: no verdict changes.
// They are added after the user's ruleset is loaded and go with the lab.
//
// A handle is mapped to the user's own line: iptables-restore and nft create the rules of a
// file in file order, so the rules of a chain, as the kernel lists them (nft -a list table)
// or as nft echoes them while loading (--echo --handle), are the file's rules of that chain
// in order (rules.ts).
import type { Lab, LabProcess } from '../lab/backend.js';
import { withDeadline } from '../errors.js';
import { chainKey, type PolicyEntry, type RuleEntry, type RuleModel } from './rules.js';
import type { RulesetFormat } from './ruleset.js';

export const TRACE_TABLE = 'rstlab_trace';
/** How long the monitor may take to show it listens (a commit it must see). */
const READY_MS = 3_000;

export interface TraceEvent {
  table: string;
  chain: string;
  kind: 'rule' | 'policy';
  /** accept, drop, continue, jump X, goto X, return */
  verdict: string;
  rule?: RuleEntry;
  policy?: PolicyEntry;
  /** the rule as the tool printed it, when it is not one of the file's */
  text?: string;
}

/** One packet through the firewall: its headers as traced and every event of every hook. */
export interface TracedPacket {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** IP total length */
  length: number;
  flags: number;
  /** an ICMP error the firewall made (its quoted ports are not in the trace) */
  icmp?: boolean;
  /** every rule and policy event of the packet, hook after hook, in order (rstlab's own left out) */
  events: TraceEvent[];
}

export interface RuleTraceResult {
  packets: TracedPacket[];
  /** what could not be mapped or was lost, said once */
  notes: string[];
}

export interface RuleTracer {
  stop(): Promise<RuleTraceResult>;
  kill(): void;
}

const TCP_FLAG_NAMES: Record<string, number> = { fin: 1, syn: 2, rst: 4, psh: 8, ack: 16, urg: 32, ecn: 64, cwr: 128 };

/** "handle → rule" per table, from the chains' listings in order. */
export function mapHandles(rules: readonly RuleEntry[], listed: Map<string, number[]>, notes: string[]): Map<string, RuleEntry> {
  const out = new Map<string, RuleEntry>();
  const byChain = new Map<string, RuleEntry[]>();
  for (const r of rules) {
    const k = chainKey(r.table, r.chain);
    const list = byChain.get(k) ?? [];
    if (r.insertAt !== undefined) list.splice(Math.min(r.insertAt - 1, list.length), 0, r);
    else list.push(r);
    byChain.set(k, list);
  }
  for (const [k, list] of byChain) {
    const handles = listed.get(k) ?? [];
    if (handles.length !== list.length) {
      notes.push(`chain ${k}: the file has ${list.length} rules, the kernel lists ${handles.length}: its rules are named by their text only`);
      continue;
    }
    list.forEach((r, i) => out.set(`${r.table} ${handles[i]}`, r));
  }
  return out;
}

/** `nft -a list table ...` → "table chain" → handles in order. */
export function listedHandles(table: string, listing: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  let chain: string | undefined;
  for (const line of listing.split('\n')) {
    const c = /^\s*chain (\S+) \{/.exec(line);
    if (c) {
      chain = c[1]!;
      out.set(chainKey(table, chain), []);
      continue;
    }
    const h = /# handle (\d+)\s*$/.exec(line);
    if (chain && h && !/^\s*(table|chain)\b/.test(line)) out.get(chainKey(table, chain))!.push(Number(h[1]));
  }
  return out;
}

/** `nft --echo --handle -f` output → "table chain" → handles in creation order. */
export function echoedHandles(echo: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const line of echo.split('\n')) {
    const m = /^(?:add|insert) rule (\S+) (\S+) (\S+) .*# handle (\d+)\s*$/.exec(line);
    if (!m) continue;
    const k = chainKey(`${m[1]} ${m[2]}`, m[3]!);
    out.set(k, [...(out.get(k) ?? []), Number(m[4])]);
  }
  return out;
}

/** Parse monitor output into packets with their events, mapped to the file. */
export function parseTrace(format: RulesetFormat, output: string, model: RuleModel, handles: Map<string, RuleEntry>): TracedPacket[] {
  const packets: TracedPacket[] = [];
  const current = new Map<string, TracedPacket>();
  const policy = (table: string, chain: string) => model.policies.find((p) => p.table === table && p.chain === chain);
  const userTables = new Set([...model.rules.map((r) => r.table), ...model.policies.map((p) => p.table)]);
  // A packet is traced again at each hook it passes, under the same id; a packet arriving at
  // prerouting (no output interface yet) is always a new one.
  const onPacket = (id: string, tuple: Omit<TracedPacket, 'events'>, later: boolean) => {
    const cur = current.get(id);
    if (later && cur && cur.sport === tuple.sport && cur.dport === tuple.dport && cur.src === tuple.src && cur.dst === tuple.dst) return;
    const p: TracedPacket = { ...tuple, events: [] };
    packets.push(p);
    current.set(id, p);
  };
  const onEvent = (id: string, e: TraceEvent) => current.get(id)?.events.push(e);

  for (const line of output.split('\n')) {
    if (format === 'iptables') {
      const pk = /^PACKET: \d+ (\S+) (.*)$/.exec(line.trim());
      if (pk) {
        const f = pk[2]!;
        const v = (k: string) => new RegExp(`\\b${k}=(\\S+)`).exec(f)?.[1];
        if (!/\bSPORT=/.test(f)) {
          // (xtables-monitor names no protocol: what is traced without ports is the firewall's ICMP)
          if (/\bOUT=\S/.test(f) && !/\bIN=\S/.test(f)) onPacket(pk[1]!, { src: v('SRC')!, dst: v('DST')!, sport: 0, dport: 0, length: Number(v('LEN')), flags: 0, icmp: true }, true);
          else current.delete(pk[1]!);
          continue;
        }
        const flags = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG'].reduce((a, n) => (new RegExp(`\\s${n}\\b`).test(f) ? a | TCP_FLAG_NAMES[n.toLowerCase()]! : a), 0);
        onPacket(pk[1]!, { src: v('SRC')!, dst: v('DST')!, sport: Number(v('SPORT')), dport: Number(v('DPORT')), length: Number(v('LEN')), flags }, /\bOUT=\S/.test(f));
        continue;
      }
      const tr = /^TRACE: \d+ (\S+) (\S+)\s*(.*)$/.exec(line.trim());
      if (!tr) continue;
      const [table, chain, kind, ...rest] = tr[2]!.split(':');
      const text = tr[3]!.replace(/^-4 /, '').trim();
      if (kind === 'policy') {
        if (!userTables.has(table!)) continue;
        const p = policy(table!, chain!);
        onEvent(tr[1]!, { table: table!, chain: chain!, kind: 'policy', verdict: rest[0]!.toLowerCase(), ...(p ? { policy: p } : {}) });
      } else if (kind === 'rule') {
        const handle = Number.parseInt(rest[0]!, 16);
        const rule = handles.get(`${table} ${handle}`);
        if (!rule && /-j TRACE\b/.test(text)) continue;
        const v = rest[1]!.toLowerCase();
        const verdict = v === 'jump' || v === 'goto' ? `${v} ${rest[2]}` : v;
        onEvent(tr[1]!, { table: table!, chain: chain!, kind: 'rule', verdict, ...(rule ? { rule } : { text }) });
      }
      continue;
    }
    const m = /^trace id (\S+) (\S+) (\S+) (\S+) (.*)$/.exec(line.trim());
    if (!m) continue;
    const [, id, family, name, chain, rest] = m as unknown as [string, string, string, string, string, string];
    const table = `${family} ${name}`;
    if (rest.startsWith('packet: ')) {
      const f = rest;
      const v = (k: string) => new RegExp(`\\b${k} (\\S+)`).exec(f)?.[1];
      if (!/\btcp sport /.test(f)) {
        if (/\bicmp type /.test(f)) onPacket(id, { src: v('ip saddr')!, dst: v('ip daddr')!, sport: 0, dport: 0, length: Number(v('ip length')), flags: 0, icmp: true }, true);
        else current.delete(id);
        continue;
      }
      const fl = /\btcp flags == (\S+)/.exec(f)?.[1] ?? '0';
      const flags = fl.startsWith('0x') ? Number.parseInt(fl, 16) : fl.split('|').reduce((a, n) => a | (TCP_FLAG_NAMES[n] ?? 0), 0);
      onPacket(id, { src: v('ip saddr')!, dst: v('ip daddr')!, sport: Number(v('tcp sport')), dport: Number(v('tcp dport')), length: Number(v('ip length')), flags }, /\boif /.test(f));
      continue;
    }
    if (name === TRACE_TABLE && family === 'ip') continue;
    const rule = /^rule (.*?)(?: # handle (\d+))? \(verdict ([^)]*)\)\s*$/.exec(rest);
    if (rule) {
      const entry = rule[2] ? handles.get(`${table} ${rule[2]}`) : undefined;
      onEvent(id, { table, chain, kind: 'rule', verdict: rule[3]!, ...(entry ? { rule: entry } : { text: rule[1]! }) });
      continue;
    }
    const pol = /^policy (\S+)/.exec(rest);
    if (pol) {
      const p = policy(table, chain);
      onEvent(id, { table, chain, kind: 'policy', verdict: pol[1]!, ...(p ? { policy: p } : {}) });
    }
  }
  return packets;
}

/**
 * Start tracing the rows' packets in the firewall host, after the ruleset is loaded.
 * `loadOutput`: what nft echoed while loading (--echo --handle). A string when tracing is
 * not possible here: the reason, said once by the caller.
 */
export async function startRuleTrace(lab: Lab, model: RuleModel, loadOutput: string, ports: { min: number; max: number }): Promise<RuleTracer | string> {
  const host = 'firewall';
  const notes: string[] = [];
  const exec = async (argv: string[], stdin?: string) => withDeadline(lab.exec(host, argv, stdin), READY_MS, argv.join(' ')).catch((e: Error) => ({ code: 127, stdout: '', stderr: e.message }));
  let handles: Map<string, RuleEntry>;
  let argv: string[];
  if (model.format === 'iptables') {
    const v = await exec(['iptables', '-V']);
    if (v.code !== 0 || !/nf_tables/.test(v.stdout)) return `rule tracing needs iptables on its nf_tables backend (this one says: ${(v.stdout || v.stderr).trim() || 'nothing'})`;
    const listed = new Map<string, number[]>();
    for (const table of new Set([...model.rules.map((r) => r.table), ...model.policies.map((p) => p.table)])) {
      const l = await exec(['nft', '-a', 'list', 'table', 'ip', table]);
      if (l.code !== 0) return `rule tracing needs nft (package nftables) to list the rules' handles: ${l.stderr.trim().split('\n')[0]}`;
      for (const [k, h] of listedHandles(table, l.stdout)) listed.set(k, h);
    }
    handles = mapHandles(model.rules, listed, notes);
    argv = ['stdbuf', '-oL', 'xtables-monitor', '--trace', '--event', '-4'];
  } else {
    handles = mapHandles(model.rules, echoedHandles(loadOutput), notes);
    argv = ['stdbuf', '-oL', 'nft', '-a', 'monitor'];
  }
  const monitor: LabProcess = lab.spawn(host, argv);
  let out = '';
  let err = '';
  monitor.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  monitor.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  let ended = false;
  void monitor.exited.then(() => (ended = true));
  const kill = () => {
    if (!ended) monitor.kill('SIGTERM');
  };
  // Ready when it shows a commit made after it started (netlink delivers only to sockets
  // already subscribed): an empty table added and removed, again until it is seen.
  const deadline = Date.now() + READY_MS;
  for (let n = 0; !/NEWGEN:|# new generation/.test(out); n++) {
    if (ended || Date.now() > deadline) {
      kill();
      return `the trace monitor (${argv.slice(2).join(' ')}) did not start: ${err.trim().split('\n')[0] || 'no output'}`;
    }
    const probe = await exec(['nft', '-f', '-'], `add table ip rstlab_probe\ndelete table ip rstlab_probe\n`);
    if (probe.code !== 0) {
      kill();
      return `rule tracing needs nft (package nftables) in the firewall host: ${probe.stderr.trim().split('\n')[0]}`;
    }
    await new Promise((r) => setTimeout(r, 20 + 20 * n));
  }
  const add = model.format === 'iptables'
    ? await exec(['iptables-restore', '-w', '--noflush'], [
      '*raw',
      `-I PREROUTING 1 -p tcp -m multiport --ports ${ports.min}:${ports.max} -j TRACE`,
      `-I OUTPUT 1 -p tcp -m multiport --ports ${ports.min}:${ports.max} -j TRACE`,
      '-I OUTPUT 1 -p icmp -j TRACE',
      'COMMIT',
      '',
    ].join('\n'))
    : await exec(['nft', '-f', '-'], [
      `table ip ${TRACE_TABLE} {`,
      '  chain pre {',
      '    type filter hook prerouting priority -350; policy accept;',
      `    tcp sport ${ports.min}-${ports.max} meta nftrace set 1`,
      `    tcp dport ${ports.min}-${ports.max} meta nftrace set 1`,
      '  }',
      '  chain out {',
      '    type filter hook output priority -350; policy accept;',
      `    tcp sport ${ports.min}-${ports.max} meta nftrace set 1`,
      `    tcp dport ${ports.min}-${ports.max} meta nftrace set 1`,
      '    ip protocol icmp meta nftrace set 1',
      '  }',
      '}',
      '',
    ].join('\n'));
  if (add.code !== 0) {
    kill();
    return `could not add the trace rule: ${add.stderr.trim().split('\n')[0]}`;
  }
  return {
    kill,
    async stop() {
      kill();
      await withDeadline(monitor.exited, READY_MS, 'the trace monitor to stop').catch(() => undefined);
      if (/No buffer space|ENOBUFS|overrun/i.test(err)) notes.push('the trace monitor lost events (netlink buffer full): some rows may show no rule');
      return { packets: parseTrace(model.format, out, model, handles), notes };
    },
  };
}
