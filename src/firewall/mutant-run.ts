// Running the matrix against each mutant (mutants.ts), in `jobs` labs at once. A lab is
// brought up once and kept for a queue of mutants: for each, the firewall's ruleset is
// replaced (nft: the whole ruleset flushed first; iptables-restore replaces every table the
// file names), and the rows run from fresh client ports of the lab's own range, so each
// mutant's rows have 4-tuples of their own in the same captures and are judged apart, by
// the same judge as the matrix. The lab's time goes to waiting (drop waits, idle rows), not
// to its CPU: reusing it saves a lab's start per mutant.
//
// Which rows a mutant can change (from the rule trace of the matrix on the ruleset itself):
// a packet's path through the rules changes only at a rule it matches. So flipping the
// verdict of a rule, deleting it, swapping it with its neighbour or flipping a chain's
// policy changes nothing for a row none of whose packets matched it (or its neighbour, or
// that policy): only the rows that did are run, and a mutant no row reaches survives without
// a lab (as mutation tools report a mutant no test covers). A port or address changed may
// make a rule match packets it never did: those that carry the new port (the rows to that
// port; every row when the new port is one of the lab's client ports) or an address of the
// new network (every row, when it holds one of the lab's addresses). Without a trace, every
// row is run.
import { setTimeout as delay } from 'node:timers/promises';
import { InputError, withDeadline } from '../errors.js';
import { newLabId, type Backend, type Lab } from '../lab/backend.js';
import { Connections } from '../run/connections.js';
import { STEP_MS } from '../run/deadlines.js';
import { LabSession } from '../run/session.js';
import { ADDRESS, CAPTURE_POINTS, FIREWALL_ADDRESSES, type Observations } from '../vocabulary.js';
import type { RowTrace } from './coverage.js';
import type { Expectations, PlannedRow } from './expectations.js';
import { GRACE_S, judgeRow } from './judge.js';
import { listenForRows, runFolder, runRow } from './matrix.js';
import type { Mutant, MutantReport, MutantResult } from './mutants.js';
import { applyRuleset, type Ruleset } from './ruleset.js';

/** Margin for the last packets to be captured (as the session's own settle). */
const SETTLE_MS = 50;

export interface MutantRunOptions {
  backend: Backend;
  runsDir: string;
  dropWaitMs: number;
  signal?: AbortSignal;
  jobs: number;
  /** the IPv6 half of the ruleset (--rules6), loaded once in each lab: mutants are of `ruleset` */
  rules6?: Ruleset;
}

const ipv4 = (a: string) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const inNet = (addr: string, net: { address: string; prefix: number }) => net.prefix === 0 || Math.floor(ipv4(addr) / 2 ** (32 - net.prefix)) === Math.floor(ipv4(net.address) / 2 ** (32 - net.prefix));
const LAB_ADDRESSES = [...Object.values(ADDRESS), ...FIREWALL_ADDRESSES];

/** The rows that can notice a mutant (see above); `clientPorts`: the range the lab's rows connect from. */
export function rowsFor(m: Mutant, rows: readonly PlannedRow[], traces: Map<number, RowTrace> | undefined, clientPorts?: { min: number; max: number }): PlannedRow[] {
  if (!traces) return [...rows];
  if (m.newNet && LAB_ADDRESSES.some((a) => inNet(a, m.newNet!))) return [...rows];
  if (m.newPort !== undefined && (!clientPorts || (m.newPort >= clientPorts.min && m.newPort <= clientPorts.max))) return [...rows];
  return rows.filter((r) => {
    const t = traces.get(r.index);
    if (!t) return true;
    if (m.newPort !== undefined && r.port === m.newPort) return true;
    if (m.policy) return t.policies.has(m.policy);
    return m.rules.some((id) => t.rules.has(id));
  });
}

interface Planned {
  mutant: Mutant;
  rows: PlannedRow[];
  ports?: Map<number, number>;
  refusal?: string;
}

export async function runMutants(mutants: Mutant[], ruleset: Ruleset, ex: Expectations, traces: Map<number, RowTrace> | undefined, opts: MutantRunOptions): Promise<MutantReport> {
  const start = performance.now();
  // (a port mutant's rows are chosen again in its lab, which knows its client ports)
  const planned: Planned[] = mutants.map((mutant) => ({ mutant, rows: rowsFor(mutant, ex.rows, traces) }));
  const queue = planned.filter((p) => p.rows.length > 0);
  // the longest first: a lab that takes an idle row early does not leave the others waiting at the end
  const longest = (p: Planned) => Math.max(...p.rows.map((r) => r.idleMs ?? 0));
  queue.sort((a, b) => longest(b) - longest(a));
  const labs = Math.min(opts.jobs, queue.length);
  const obsOf = new Map<Planned, Observations>();
  // one lab failing stops the others (each takes its lab down) before the failure is reported
  const stop = new AbortController();
  const onAbort = () => stop.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();
  let first: { e: unknown } | undefined;
  await Promise.allSettled(Array.from({ length: labs }, () => worker(queue, ruleset, ex, traces, { ...opts, signal: stop.signal }, obsOf).catch((e: unknown) => {
    first ??= { e };
    stop.abort(e);
  })));
  opts.signal?.removeEventListener('abort', onAbort);
  if (first) throw first.e;
  const results: MutantResult[] = planned.map((p) => {
    if (p.refusal !== undefined) return { mutant: p.mutant, status: 'refused', killedBy: [], rowsRun: p.rows.map((r) => r.index), refusal: p.refusal };
    const obs = obsOf.get(p);
    const killedBy = obs && p.ports
      ? p.rows.flatMap((row) => {
        const j = judgeRow(row, p.ports!.get(row.index)!, obs, opts.dropWaitMs);
        return j.passed ? [] : [{ row, observed: j.observed }];
      })
      : [];
    return { mutant: p.mutant, status: killedBy.length > 0 ? 'killed' : 'survived', killedBy, rowsRun: p.rows.map((r) => r.index) };
  });
  return { results, seconds: (performance.now() - start) / 1000, labs };
}

/** One lab, taking mutants from the queue until it is empty; a fresh lab when its ports run out. */
async function worker(queue: Planned[], ruleset: Ruleset, ex: Expectations, traces: Map<number, RowTrace> | undefined, opts: MutantRunOptions, obsOf: Map<Planned, Observations>): Promise<void> {
  while (queue.length > 0) {
    const labId = newLabId();
    const dir = await runFolder(opts.runsDir, labId, 'firewall-mutants');
    const connections = new Connections(() => 0);
    const session = new LabSession({ backend: opts.backend, labId, dir, capture: CAPTURE_POINTS, signal: opts.signal, onEvent: (host, e) => connections.onEvent(host, e) });
    const done: Planned[] = [];
    try {
      const lab = await session.up();
      if (opts.rules6) await session.guard(withDeadline(applyRuleset(lab, 'firewall', opts.rules6), STEP_MS, `loading the ruleset ${opts.rules6.file}`));
      await listenForRows(session, ex);
      await session.recording();
      const taken = new Set(ex.rows.map((r) => r.port));
      let next = lab.ports.min;
      let sysctlsSet = false;
      for (let p = queue.shift(); p; p = queue.shift()) {
        p.rows = rowsFor(p.mutant, ex.rows, traces, lab.ports);
        if (p.rows.length === 0) continue;
        if (next + p.rows.length + taken.size > lab.ports.max) {
          queue.unshift(p);
          break;
        }
        const refusal = await load(session, lab, ruleset, p.mutant);
        if (refusal !== undefined) {
          p.refusal = refusal;
          continue;
        }
        if (!sysctlsSet) {
          await session.setSysctls(ex.sysctls, ex.file);
          sysctlsSet = true;
        }
        p.ports = new Map();
        for (const r of p.rows) {
          while (taken.has(next)) next++;
          p.ports.set(r.index, next++);
        }
        await session.guard(Promise.all(p.rows.map((r) => runRow(r, p.ports!.get(r.index)!, session.agents, connections, opts.dropWaitMs, `m${p.mutant.id}r${r.index}`))));
        // The judge counts answers up to the drop wait plus a grace after each row's segment:
        // the next mutant's ruleset must not be the one a late answer crosses (a SYN-ACK the
        // server retransmits after a second would otherwise pass the next ruleset in time).
        await session.guard(delay(GRACE_S * 1000 + SETTLE_MS));
        done.push(p);
      }
      await session.finish(async () => undefined);
      const obs: Observations = { ...(await session.decode()), conns: connections.conns, counters: {}, snapshots: {} };
      for (const p of done) obsOf.set(p, obs);
    } catch (e) {
      throw await session.failure(e);
    } finally {
      await session.down();
    }
  }
}

/** Replace the firewall's ruleset with the mutant's; the tool's refusal, if it refuses it. */
async function load(session: LabSession, lab: Lab, ruleset: Ruleset, m: Mutant): Promise<string | undefined> {
  if (ruleset.format === 'nftables') await session.guard(withDeadline(lab.exec('firewall', ['nft', 'flush', 'ruleset']), STEP_MS, 'flushing the ruleset'));
  try {
    await session.guard(withDeadline(applyRuleset(lab, 'firewall', { ...ruleset, text: m.text }), STEP_MS, `loading mutant ${m.id}`));
    // (conntrack entries of earlier mutants belong to other ports: they meet none of these rows)
    return undefined;
  } catch (e) {
    if (e instanceof InputError) return e.message;
    throw e;
  }
}
