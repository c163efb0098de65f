// Judging each expectation against what a run observed: an rst expectation field by field
// against every RST sighting (the closest candidate explains a failure), and the app,
// counter, sockets and noRst rules. verify.ts runs them over a scenario's expectations.
import type { Expectation, RstExpectation } from '../scenario/schema.js';
import { formatPacket } from './format.js';
import { FlowView, checkShape, sourceMacChange } from './signatures.js';
import {
  connContext, connPorts, contextOf, describeRst, isRst, isSyn, isSynAck, onPorts, packetsAt, sameFlow,
  type PacketRef, type RstSighting,
} from './sightings.js';
import {
  TCP, TTL_WORD, addressOf, endpointText, familyOf, firewallAddresses, hostLabel,
  type AppEvent, type CapturePoint, type Observations, type SocketEntry, type TcpPacket,
} from '../vocabulary.js';

export interface Result {
  /** the scenario file's line of the expectation; 0 for a RST no expectation claimed */
  line: number;
  kind: string;
  passed: boolean;
  /** one line: what was expected */
  summary: string;
  /** on failure: expected vs seen, field by field */
  detail?: string;
  /** on failure: the packets around it */
  context?: PacketRef[];
}

// ---------------------------------------------------------------------------------------
// rst expectations: field by field

interface FieldCheck {
  field: string;
  expected: string;
  seen: string;
  ok: boolean;
  /** how much a match of this field says that the candidate is the RST meant */
  weight: number;
}

/** The sender's view of the flow at the sighting's point, before the RST. */
function flowViewOf(obs: Observations, s: RstSighting): FlowView {
  const rstIndex = s.seen[s.point]?.index ?? 0;
  const before = packetsAt(obs, s.point).slice(0, rstIndex).filter((q) => sameFlow(q, s));
  return new FlowView(before, s, s.answered?.packet, s.point);
}

function checkRst(e: RstExpectation, s: RstSighting, obs: Observations, captured: Set<CapturePoint>): FieldCheck[] {
  const checks: FieldCheck[] = [];
  const add = (field: string, expected: string, seen: string, ok: boolean, weight = 1): void => {
    checks.push({ field, expected, seen, ok, weight });
  };

  // Expectations name hosts, never addresses: the same expectation holds over either family,
  // judged with the addresses (and the TTL or hop limit) of the RST's own.
  const family = familyOf(s.src);
  add('from', e.from, `${s.from ?? 'unknown'} (first seen at ${s.point}${s.fromBy === 'ttl' ? `, judged from ${TTL_WORD[family]} ${s.packet.ttl}` : ''})`, s.from === e.from, 2);

  // The IP source: a firewall REJECT (and a forged segment) poses as an end of the flow.
  // The impostor has no address of its own: only the one it announced (write posingAs).
  const fw = firewallAddresses(family);
  const own = e.from === 'firewall' ? fw : e.from === 'impostor' ? [] : [addressOf(e.from, family)];
  const sources = e.posingAs !== undefined ? [addressOf(e.posingAs, family)] : own;
  const sourceExpected = e.posingAs !== undefined ? `${addressOf(e.posingAs, family)} (${e.posingAs})` : e.from === 'firewall' ? `${fw.join(' or ')} (firewall's own)` : e.from === 'impostor' ? 'posingAs: the address the impostor took' : `${own[0]} (${e.from}'s own)`;
  add(e.posingAs !== undefined ? 'posingAs' : 'source', sourceExpected, hostLabel(s.src), sources.includes(s.src));

  add('to', e.to, hostLabel(s.dst), s.to === e.to, 2);

  if (e.conn !== undefined) {
    const ports = connPorts(obs.conns[e.conn]);
    const seen = `ports ${s.sport} > ${s.dport}${s.conns.length > 0 ? ` (${s.conns.join('|')})` : ''}`;
    // The connection says which RST is meant; the other fields say what it should look like.
    if (!ports) add('conn', `${e.conn} (its ports are unknown: no such connection observed)`, seen, false, 4);
    else add('conn', `${e.conn} (ports ${ports[0]} <> ${ports[1]})`, seen, onPorts(s.sport, s.dport, ports), 4);
  }

  // flags, seq, ack and answers: the RST's shape, judged as diagnose judges it (signatures.ts)
  for (const c of checkShape(e, s.packet, s.answered?.packet, flowViewOf(obs, s))) {
    let seen = c.seen;
    if (c.field === 'answers') seen = s.answered ? `${c.seen} (at ${s.answered.point}: ${formatPacket(s.answered.packet)})` : `nothing (no packet came to the sender before it at ${s.point})`;
    add(c.field, c.expected, seen, c.ok);
  }

  if (e.newMac !== undefined) {
    const rstIndex = s.seen[s.point]?.index ?? 0;
    const m = sourceMacChange(packetsAt(obs, s.point).slice(0, rstIndex), s.packet);
    const seen = `${s.packet.srcMac ?? 'no MAC'} at ${s.point}; earlier from ${s.src}: ${m.earlier.join(', ') || 'none'}`;
    add('newMac', e.newMac ? 'a MAC none of its IP source\'s earlier packets had' : 'the MAC its IP source used before', seen, m.changed === e.newMac);
  }

  const seenList = s.seenAt.join(', ') || 'nowhere';
  if (e.seenAt !== undefined) {
    const blind = e.seenAt.filter((pt) => !captured.has(pt));
    const ok = e.seenAt.every((pt) => s.seen[pt] !== undefined);
    const note = blind.length > 0 ? ` (not captured: ${blind.join(', ')})` : '';
    add('seenAt', e.seenAt.join(', '), seenList + note, ok);
  }
  if (e.notSeenAt !== undefined) {
    // Absence is only proven where a capture ran.
    const blind = e.notSeenAt.filter((pt) => !captured.has(pt));
    const ok = blind.length === 0 && e.notSeenAt.every((pt) => s.seen[pt] === undefined);
    const note = blind.length > 0 ? ` (not captured, absence unproven: ${blind.join(', ')})` : '';
    add('notSeenAt', `none of ${e.notSeenAt.join(', ')}`, seenList + note, ok);
  }
  if (e.ttlAt !== undefined) {
    for (const [pt, ttl] of Object.entries(e.ttlAt) as [CapturePoint, number][]) {
      const seen = s.seen[pt];
      add(`ttlAt.${pt}`, String(ttl), seen ? String(seen.ttl) : `not seen at ${pt}`, seen?.ttl === ttl);
    }
  }
  if (e.reason === 'NONE') {
    // No TCP socket made it (a netfilter REJECT): the tracepoint has no event on its
    // addresses and ports near its time, whoever the sighting was credited to.
    const events = obs.kernelResets?.filter((k) => k.saddr === s.src && k.sport === s.sport && k.daddr === s.dst && k.dport === s.dport && Math.abs(k.time - s.time) <= 1);
    const seen = events === undefined ? 'unknown (no kernel reasons recorded: tracefs unavailable)' : events.length === 0 ? 'none' : events.map((k) => k.reason).join(', ');
    add('reason', 'NONE (no tcp:tcp_send_reset event for it)', seen, events?.length === 0);
  } else if (e.reason !== undefined) {
    const seen = s.reason ?? (obs.kernelResets === undefined ? 'none (no kernel reasons recorded: tracefs unavailable)' : 'none (no tcp:tcp_send_reset event for it)');
    add('reason', e.reason, seen, s.reason === e.reason);
  }
  return checks;
}

function rstSummary(e: RstExpectation): string {
  const parts = [`RST${e.flags ? ` ${e.flags}` : ''} from ${e.from}${e.posingAs ? ` posing as ${e.posingAs}` : ''} to ${e.to}`];
  if (e.conn !== undefined) parts[0] += ` on ${e.conn}`;
  if (e.seq !== undefined) parts.push(`seq ${e.seq}`);
  if (e.ack !== undefined) parts.push(`ack ${e.ack}`);
  if (e.answers !== undefined) parts.push(`answering ${e.answers}`);
  if (e.newMac !== undefined) parts.push(e.newMac ? 'from a MAC new for its source' : 'from its source\'s usual MAC');
  if (e.seenAt !== undefined) parts.push(`seen at ${e.seenAt.join(', ')}`);
  if (e.notSeenAt !== undefined) parts.push(`not at ${e.notSeenAt.join(', ')}`);
  if (e.ttlAt !== undefined) parts.push(`TTL ${Object.entries(e.ttlAt).map(([pt, t]) => `${t} at ${pt}`).join(', ')}`);
  if (e.reason !== undefined) parts.push(`reason ${e.reason}`);
  const count = e.count ?? 1;
  return `${parts.join(', ')}${count === 1 ? '' : ` (×${count})`}`;
}

function fieldTable(checks: FieldCheck[]): string {
  return checks.map((c) => `  ${c.ok ? '✓' : '✗'} ${c.field}: expected ${c.expected}, seen ${c.seen}`).join('\n');
}


interface RstJudgement {
  result: Result;
  matched: RstSighting[];
}

export function judgeRst(line: number, e: RstExpectation, sightings: RstSighting[], obs: Observations, captured: Set<CapturePoint>): RstJudgement {
  const count = e.count ?? 1;
  const judged = sightings.map((s) => ({ s, checks: checkRst(e, s, obs, captured) }));
  const matched = judged.filter((j) => j.checks.every((c) => c.ok)).map((j) => j.s);
  const summary = rstSummary(e);
  if (matched.length === count) return { result: { line, kind: 'rst', passed: true, summary }, matched };

  const lines: string[] = [`expected ${count} matching RST${count === 1 ? '' : 's'}, saw ${matched.length}`];
  let context: PacketRef[] = [];
  if (matched.length > 0) {
    lines.push('matching:', ...matched.map((s) => `  ${describeRst(s)}`));
    context = matched.flatMap((s) => contextOf(obs, s, 2, 0));
  }
  const others = judged.filter((j) => !matched.includes(j.s));
  if (matched.length < count) {
    if (sightings.length === 0) {
      lines.push('no RST at any capture point at all');
    } else {
      if (!sightings.some((s) => s.from === e.from && s.to === e.to)) lines.push(`no RST from ${e.from} to ${e.to} at all`);
      // The closest candidate: the one that matches most (the connection weighs most, then
      // sender and receiver), so that the detail is about the RST the author meant.
      const score = (checks: FieldCheck[]): number => checks.reduce((acc, c) => acc + (c.ok ? c.weight : 0), 0);
      const closest = others.reduce<(typeof others)[number] | undefined>((best, j) => (!best || score(j.checks) > score(best.checks) ? j : best), undefined);
      if (closest) {
        lines.push(`closest: ${describeRst(closest.s)}`, fieldTable(closest.checks));
        context = context.concat(contextOf(obs, closest.s));
      }
    }
    if (context.length === 0) context = connContext(obs, e.conn, captured);
  }
  return { result: { line, kind: 'rst', passed: false, summary, detail: lines.join('\n'), context }, matched };
}

// ---------------------------------------------------------------------------------------
// The other rules

export function judgeNoRst(line: number, sightings: RstSighting[], obs: Observations): Result {
  const summary = 'no RST at any capture point';
  if (sightings.length === 0) return { line, kind: 'noRst', passed: true, summary };
  return {
    line,
    kind: 'noRst',
    passed: false,
    summary,
    detail: [`expected no RST, saw ${sightings.length}:`, ...sightings.map((s) => `  ${describeRst(s)}`)].join('\n'),
    context: sightings.flatMap((s) => contextOf(obs, s, 2, 0)),
  };
}

function eventName(ev: AppEvent): string {
  return ev.event === 'error' ? ev.code ?? 'error' : ev.event;
}

export function judgeApp(line: number, e: Extract<Expectation, { app: unknown }>['app'], obs: Observations, captured: Set<CapturePoint>): Result {
  const parts: string[] = [];
  if (e.saw !== undefined) parts.push(`saw ${e.saw}`);
  if (e.notSaw !== undefined) parts.push(`did not see ${e.notSaw}`);
  const summary = `the ${e.host} end of ${e.conn} ${parts.join(' and ') || '(nothing asserted)'}`;
  const fail = (detail: string): Result => ({ line, kind: 'app', passed: false, summary, detail, context: connContext(obs, e.conn, captured) });

  if (parts.length === 0) return fail('names neither saw nor notSaw: it would prove nothing');
  const conn = obs.conns[e.conn];
  if (!conn) return fail(`no connection ${e.conn} was observed (known: ${Object.keys(obs.conns).join(', ') || 'none'})`);
  // The end is the initiator when it lives in that host; otherwise the acceptor, which does
  // not exist when the connection was never accepted (it then saw nothing at all).
  const end = conn.initiator.host === e.host ? conn.initiator : conn.acceptor;
  const events = end?.events.map(eventName) ?? [];
  const seen = end ? `the ${e.host} end saw: ${events.join(', ') || 'nothing'}` : `the ${e.host} end never existed (not accepted)`;
  const errors: string[] = [];
  if (e.saw !== undefined && !events.includes(e.saw)) errors.push(`saw: expected ${e.saw}, ${seen}`);
  if (e.notSaw !== undefined && events.includes(e.notSaw)) errors.push(`notSaw: expected no ${e.notSaw}, ${seen}`);
  return errors.length === 0 ? { line, kind: 'app', passed: true, summary } : fail(errors.join('\n'));
}

export function judgeCounter(line: number, e: Extract<Expectation, { counter: unknown }>['counter'], obs: Observations): Result {
  const wants: string[] = [];
  if (e.delta !== undefined) wants.push(`grew by ${e.delta}`);
  if (e.min !== undefined) wants.push(`grew by at least ${e.min}`);
  const summary = `${e.host} counter ${e.name} ${wants.join(' and ') || '(nothing asserted)'}`;
  const fail = (detail: string): Result => ({ line, kind: 'counter', passed: false, summary, detail });
  if (wants.length === 0) return fail('names neither delta nor min: it would prove nothing');
  const counters = obs.counters[e.host];
  if (!counters) return fail(`no counters were recorded for ${e.host}`);
  // nstat leaves out counters that are zero, so a missing one is 0.
  const before = counters.before[e.name] ?? 0;
  const after = counters.after[e.name] ?? 0;
  const delta = after - before;
  const seen = `seen ${delta} (before ${before}, after ${after})`;
  const errors: string[] = [];
  if (e.delta !== undefined && delta !== e.delta) errors.push(`delta: expected ${e.delta}, ${seen}`);
  if (e.min !== undefined && delta < e.min) errors.push(`min: expected at least ${e.min}, ${seen}`);
  return errors.length === 0 ? { line, kind: 'counter', passed: true, summary } : fail(errors.join('\n'));
}

/** ss writes TIME-WAIT, /proc/net/tcp decoders sometimes TIME_WAIT. */
function normalState(state: string): string {
  return state.toUpperCase().replace(/_/g, '-');
}

function formatEntry(s: SocketEntry): string {
  return `  ${s.state} ${endpointText(s.local, s.localPort)} ${endpointText(s.remote, s.remotePort)}`;
}

export function judgeSockets(line: number, e: Extract<Expectation, { sockets: unknown }>['sockets'], obs: Observations): Result {
  const summary = `${e.host} snapshot ${e.snapshot}: ${e.count} socket${e.count === 1 ? '' : 's'} in ${e.state}${e.conn !== undefined ? ` on ${e.conn}` : ''}`;
  const fail = (detail: string): Result => ({ line, kind: 'sockets', passed: false, summary, detail });
  const snapshot = obs.snapshots[e.host]?.[e.snapshot];
  if (!snapshot) return fail(`no snapshot ${e.snapshot} of ${e.host} was taken`);
  let scope = snapshot;
  if (e.conn !== undefined) {
    const ports = connPorts(obs.conns[e.conn]);
    if (!ports) return fail(`the ports of ${e.conn} are unknown: no such connection observed`);
    scope = snapshot.filter((s) => onPorts(s.localPort, s.remotePort, ports));
  }
  const inState = scope.filter((s) => normalState(s.state) === e.state);
  if (inState.length === e.count) return { line, kind: 'sockets', passed: true, summary };
  const listed = scope.slice(0, 30).map(formatEntry);
  const more = scope.length > listed.length ? [`  ... and ${scope.length - listed.length} more`] : [];
  return fail(
    [
      `count: expected ${e.count} in ${e.state}, seen ${inState.length}`,
      `${e.conn !== undefined ? `entries on ${e.conn}'s ports` : 'entries'} in ${e.snapshot}:${scope.length === 0 ? ' none' : ''}`,
      ...listed,
      ...more,
    ].join('\n'),
  );
}

