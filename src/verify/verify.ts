// The one evaluator of a scenario's expectations against what a run observed.
//
// RSTs are judged as events, not as packets: the same RST crosses up to four capture
// points, so it is first merged into one RstSighting (who really sent it, which IP source
// it carried, where it was seen with which TTL, what it answered, the kernel's reason).
// Every rst expectation is then matched against the sightings, and every sighting no
// expectation claimed is a failure of its own: a scenario proves that exactly the
// expected RSTs appeared, not merely that one of them did.
import { TCP, flagString, type TcpPacket } from '../capture/packet.js';
import { CAPTURE_INTERFACE, TOPOLOGY } from '../lab/backend.js';
import type { Expectation, RstExpectation } from '../scenario/schema.js';
import { formatPacket } from './format.js';
import { mergeAcrossPoints, type Copy, type WireEvent } from '../capture/merge.js';
import type { AppEvent, CapturePoint, ConnObservation, EndHost, Host, KernelReset, Observations, SocketEntry } from './observations.js';

// ---------------------------------------------------------------------------------------
// Public types

/** One packet of a capture point: `obs.packets[point][index]`. */
export interface PacketRef {
  point: CapturePoint;
  index: number;
  packet: TcpPacket;
}

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

/** Where a RST was seen, with the TTL it had there. */
export interface RstSeen {
  ttl: number;
  time: number;
  index: number;
}

/** One RST as a single event, merged across the capture points it crossed. */
export interface RstSighting {
  /** 1, 2, ... in the order the RSTs were put on the wire */
  id: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  /** 'R' or 'R.' (tcpdump's notation; other bits shown too if set) */
  flagText: string;
  /** the capture points that saw it, in the order of its path */
  seenAt: CapturePoint[];
  seen: Partial<Record<CapturePoint, RstSeen>>;
  /**
   * The first point of its path that saw it: the sender's own capture point when that was
   * captured. seq/ack relations and `answered` are judged here, where the sender's view
   * of the flow is.
   */
  point: CapturePoint;
  /** the RST as seen at `point` */
  packet: TcpPacket;
  /** the time at `point` (seconds since the epoch) */
  time: number;
  /** the host that really sent it; undefined when the path says nothing (not a lab address) */
  from: Host | undefined;
  /**
   * 'path': the owner of the first capture point on its path that saw it.
   * 'ttl': capture points before that one were not captured, so the TTL decided whether
   * the firewall made it or forwarded it.
   */
  fromBy: 'path' | 'ttl';
  /** the host whose address is the IP source (a firewall REJECT carries the server's) */
  ipSource: Host | undefined;
  /** the host whose address is the IP destination */
  to: Host | undefined;
  /** the connection whose ports it carries; the first of `conns` when several share them */
  conn: string | undefined;
  /** every connection with these ports (a reused local port makes several) */
  conns: string[];
  /** the last packet of the flow that came to its sender before it, at `point` */
  answered: PacketRef | undefined;
  /** the kernel's reason (tcp:tcp_send_reset); undefined for firewall REJECTs and without tracefs */
  reason: string | undefined;
}

export interface Verdict {
  passed: boolean;
  results: Result[];
  rsts: RstSighting[];
}

export interface VerifyOptions {
  /** the capture points this run captured: a point not captured proves neither presence nor absence */
  capture: CapturePoint[];
}

// ---------------------------------------------------------------------------------------
// The lab's addresses and paths

const HOST_OF_ADDRESS: ReadonlyMap<string, Host> = new Map<string, Host>([
  [TOPOLOGY.client.address, 'client'],
  [TOPOLOGY.server.address, 'server'],
  [TOPOLOGY.firewall.addresses.eth0, 'firewall'],
  [TOPOLOGY.firewall.addresses.eth1, 'firewall'],
]);

const FIREWALL_ADDRESSES: readonly string[] = Object.values(TOPOLOGY.firewall.addresses);

const END_ADDRESS: Record<EndHost, string> = { client: TOPOLOGY.client.address, server: TOPOLOGY.server.address };

const POINT_HOST: Record<CapturePoint, Host> = {
  client: CAPTURE_INTERFACE.client.host,
  'firewall-a': CAPTURE_INTERFACE['firewall-a'].host,
  'firewall-b': CAPTURE_INTERFACE['firewall-b'].host,
  server: CAPTURE_INTERFACE.server.host,
};

/** The capture points a packet crosses on its way into net A (the client's side), in order. */
const PATH_TO_A: readonly CapturePoint[] = ['server', 'firewall-b', 'firewall-a', 'client'];
/** ... and into net B (the server's side). */
const PATH_TO_B: readonly CapturePoint[] = ['client', 'firewall-a', 'firewall-b', 'server'];
/** On either path the firewall forwards between the 2nd and the 3rd point: from index 2 on, one hop is lost. */
const FIRST_POINT_PAST_ROUTER = 2;
/** Linux's net.ipv4.ip_default_ttl; every lab host keeps it. */
const DEFAULT_TTL = 64;

/**
 * The same RST at two capture points is a few µs apart; two identical RSTs (a peer that
 * retransmits into a closed port gets one each time) are far more than this apart.
 */
function ipv4(address: string): number | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  if (!m) return undefined;
  return m.slice(1).reduce((acc, part) => acc * 256 + Number(part), 0);
}

function inSubnet(address: string, cidr: string): boolean {
  const [net, bits] = cidr.split('/');
  const a = ipv4(address);
  const n = ipv4(net ?? '');
  if (a === undefined || n === undefined) return false;
  const size = 2 ** (32 - Number(bits));
  return Math.floor(a / size) === Math.floor(n / size);
}

/** The path a packet takes, from its destination's subnet (else from its source's). */
function pathOf(p: { src: string; dst: string }): readonly CapturePoint[] {
  if (inSubnet(p.dst, TOPOLOGY.subnets.a)) return PATH_TO_A;
  if (inSubnet(p.dst, TOPOLOGY.subnets.b)) return PATH_TO_B;
  if (inSubnet(p.src, TOPOLOGY.subnets.a)) return PATH_TO_B;
  return PATH_TO_A;
}

function hostOf(address: string): Host | undefined {
  return HOST_OF_ADDRESS.get(address);
}

function hostLabel(address: string): string {
  return `${address} (${hostOf(address) ?? 'not a lab host'})`;
}

// ---------------------------------------------------------------------------------------
// 32-bit sequence arithmetic (RFC 9293 §3.4: all comparisons are modulo 2^32)

function seqAdd(a: number, n: number): number {
  return (((a + n) % 0x1_0000_0000) + 0x1_0000_0000) % 0x1_0000_0000;
}

/** a is after b in sequence space */
function seqAfter(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** The sequence number just past a segment: SYN and FIN each occupy one (RFC 9293 §3.4). */
function seqEnd(p: TcpPacket): number {
  return seqAdd(p.seq, p.payloadLength + (p.flags & TCP.SYN ? 1 : 0) + (p.flags & TCP.FIN ? 1 : 0));
}

// ---------------------------------------------------------------------------------------
// Packet helpers

const isRst = (p: TcpPacket): boolean => (p.flags & TCP.RST) !== 0;
const isSyn = (p: TcpPacket): boolean => (p.flags & (TCP.SYN | TCP.ACK)) === TCP.SYN;
const isSynAck = (p: TcpPacket): boolean => (p.flags & (TCP.SYN | TCP.ACK)) === (TCP.SYN | TCP.ACK);

function sameFlow(p: TcpPacket, q: { src: string; dst: string; sport: number; dport: number }): boolean {
  return (
    (p.src === q.src && p.dst === q.dst && p.sport === q.sport && p.dport === q.dport) ||
    (p.src === q.dst && p.dst === q.src && p.sport === q.dport && p.dport === q.sport)
  );
}

/** What kind of segment a packet is, in the words of `answers`. */
export function segmentKind(p: TcpPacket): 'SYN' | 'SYN-ACK' | 'FIN' | 'data' | 'ACK' | 'RST' | 'other' {
  if (isRst(p)) return 'RST';
  if (isSyn(p)) return 'SYN';
  if (isSynAck(p)) return 'SYN-ACK';
  if (p.flags & TCP.FIN) return 'FIN';
  if (p.payloadLength > 0) return 'data';
  if (p.flags & TCP.ACK) return 'ACK';
  return 'other';
}

function packetsAt(obs: Observations, point: CapturePoint): TcpPacket[] {
  return obs.packets[point] ?? [];
}

/** The points this run captured; packets of any other point are not looked at. */
function capturedPoints(opts: VerifyOptions): Set<CapturePoint> {
  return new Set<CapturePoint>(opts.capture);
}

// ---------------------------------------------------------------------------------------
// Connections

/** [client-side port, server-side port] of a connection, from whichever end knows them. */
function connPorts(c: ConnObservation | undefined): [number, number] | undefined {
  if (!c) return undefined;
  const i = c.initiator;
  if (i.localPort !== undefined && i.remotePort !== undefined) return [i.localPort, i.remotePort];
  const a = c.acceptor;
  if (a?.localPort !== undefined && a.remotePort !== undefined) return [a.remotePort, a.localPort];
  return undefined;
}

function onPorts(sport: number, dport: number, ports: [number, number]): boolean {
  return (sport === ports[0] && dport === ports[1]) || (sport === ports[1] && dport === ports[0]);
}

function connsOnPorts(obs: Observations, sport: number, dport: number): string[] {
  return Object.values(obs.conns)
    .filter((c) => {
      const ports = connPorts(c);
      return ports !== undefined && onPorts(sport, dport, ports);
    })
    .map((c) => c.id);
}

// ---------------------------------------------------------------------------------------
// RST sightings

type RawRst = Copy;
type Group = WireEvent;

/**
 * Every RST of the run as one event per RST put on the wire, merged across the capture
 * points (capture/merge.ts), with its real sender, the packet it answered and the kernel's reason.
 */
export function rstSightings(obs: Observations, opts: VerifyOptions): RstSighting[] {
  const captured = capturedPoints(opts);
  const groups = mergeAcrossPoints(obs.packets, [...captured], isRst);
  const sightings = groups.map((g) => sightingOf(g, obs, captured));
  sightings.sort((x, y) => x.time - y.time);
  sightings.forEach((s, i) => (s.id = i + 1));
  assignKernelReasons(sightings, obs.kernelResets);
  return sightings;
}

function sightingOf(g: Group, obs: Observations, captured: Set<CapturePoint>): RstSighting {
  const any = g.seen.values().next().value as RawRst;
  const path = pathOf(any.packet);
  const seenAt = path.filter((point) => g.seen.has(point));
  const firstIndex = path.findIndex((point) => g.seen.has(point));
  const point = path[firstIndex] as CapturePoint;
  const first = g.seen.get(point) as RawRst;
  const p = first.packet;

  // The sender is the owner of the first capture point on the path that saw it: a packet
  // leaves its sender before any other point can see it. Where an earlier point was not
  // captured, that rule would credit whoever was watching; then the TTL decides, because
  // the firewall's forwarding takes one off (DESIGN.md "Capture and verification").
  const blindBefore = path.slice(0, firstIndex).some((pt) => !captured.has(pt));
  let from: Host | undefined = POINT_HOST[point];
  let fromBy: RstSighting['fromBy'] = 'path';
  if (blindBefore) {
    fromBy = 'ttl';
    const start = POINT_HOST[path[0] as CapturePoint];
    if (firstIndex < FIRST_POINT_PAST_ROUTER) from = start;
    else from = p.ttl >= DEFAULT_TTL ? 'firewall' : start;
  }

  const seen: Partial<Record<CapturePoint, RstSeen>> = {};
  for (const pt of seenAt) {
    const raw = g.seen.get(pt) as RawRst;
    seen[pt] = { ttl: raw.packet.ttl, time: raw.packet.time, index: raw.index };
  }
  const conns = connsOnPorts(obs, p.sport, p.dport);
  return {
    id: 0,
    src: p.src,
    dst: p.dst,
    sport: p.sport,
    dport: p.dport,
    seq: p.seq,
    ack: p.ack,
    flags: p.flags,
    flagText: flagString(p.flags),
    seenAt,
    seen,
    point,
    packet: p,
    time: p.time,
    from,
    fromBy,
    ipSource: hostOf(p.src),
    to: hostOf(p.dst),
    conn: conns[0],
    conns,
    answered: answeredBy(obs, point, first.index, p),
    reason: undefined,
  };
}

/**
 * The last packet of the flow that travelled to the RST's sender before it, at `point`.
 * RSTs are skipped: a RST is never answered with a RST (RFC 9293 §3.10.7.1).
 */
function answeredBy(obs: Observations, point: CapturePoint, rstIndex: number, rst: TcpPacket): PacketRef | undefined {
  const packets = packetsAt(obs, point);
  for (let i = rstIndex - 1; i >= 0; i--) {
    const q = packets[i] as TcpPacket;
    if (q.src === rst.dst && q.dst === rst.src && q.sport === rst.dport && q.dport === rst.sport && !isRst(q)) {
      return { point, index: i, packet: q };
    }
  }
  return undefined;
}

const WILDCARD_ADDRESSES = new Set(['0.0.0.0', '::', '']);

/**
 * Pair each tcp:tcp_send_reset event with one sighting: same addresses and ports, nearest
 * in time, each event used once. A RST sent for a listener (a full accept queue) carries
 * the listener's own address, 0.0.0.0 and port 0 where the flow's are missing, so those
 * count as wildcards, ranked below exact matches. Only a RST whose sender owns its IP
 * source can have one: netfilter REJECTs never fire the tracepoint.
 */
function assignKernelReasons(sightings: RstSighting[], resets: KernelReset[] | undefined): void {
  if (!resets || resets.length === 0) return;
  const addr = (k: string, p: string): 0 | 1 | undefined => (k === p ? 0 : WILDCARD_ADDRESSES.has(k) ? 1 : undefined);
  const port = (k: number, p: number): 0 | 1 | undefined => (k === p ? 0 : k === 0 ? 1 : undefined);
  const pairs: { s: RstSighting; k: number; wild: number; dt: number }[] = [];
  for (const s of sightings) {
    if (s.from === undefined || s.from !== s.ipSource) continue;
    resets.forEach((r, k) => {
      const parts = [addr(r.saddr, s.src), port(r.sport, s.sport), addr(r.daddr, s.dst), port(r.dport, s.dport)];
      if (parts.some((x) => x === undefined)) return;
      const wild = parts.reduce<number>((acc, x) => acc + (x ?? 0), 0);
      pairs.push({ s, k, wild, dt: Math.abs(r.time - s.time) });
    });
  }
  pairs.sort((x, y) => x.wild - y.wild || x.dt - y.dt);
  const used = new Set<number>();
  for (const pair of pairs) {
    if (used.has(pair.k) || pair.s.reason !== undefined) continue;
    pair.s.reason = (resets[pair.k] as KernelReset).reason;
    used.add(pair.k);
  }
}

/** One line about a sighting, for failure details and the report. */
export function describeRst(s: RstSighting): string {
  const ttls = s.seenAt.map((pt) => `${pt} ttl ${s.seen[pt]?.ttl}`).join(', ');
  const posing = s.ipSource !== s.from ? ` (IP source ${hostLabel(s.src)})` : '';
  const conn = s.conns.length > 0 ? ` on ${s.conns.join('|')}` : '';
  const answered = s.answered ? `, answering ${segmentKind(s.answered.packet)}` : '';
  const reason = s.reason ? `, reason ${s.reason}` : '';
  return (
    `RST #${s.id} ${s.flagText} from ${s.from ?? 'unknown'}${posing} to ${s.to ?? s.dst}${conn}: ` +
    `${s.src}.${s.sport} > ${s.dst}.${s.dport} seq ${s.seq}${s.flags & TCP.ACK ? ` ack ${s.ack}` : ''}${answered}${reason}; seen at ${ttls}`
  );
}

// ---------------------------------------------------------------------------------------
// seq / ack relations

interface Resolved {
  value?: number;
  /** why it could not be resolved */
  why?: string;
}

/** The sender's view of the flow at the sighting's point, before the RST. */
class FlowView {
  private readonly before: TcpPacket[];

  constructor(
    private readonly obs: Observations,
    private readonly s: RstSighting,
  ) {
    const packets = packetsAt(obs, s.point);
    const rstIndex = s.seen[s.point]?.index ?? 0;
    this.before = packets.slice(0, rstIndex).filter((q) => sameFlow(q, s));
  }

  resolve(relation: number | string): Resolved {
    if (typeof relation === 'number') return { value: relation };
    const m = /^(snd_nxt|rcv_nxt|(answered|syn|synack)\.(seq|ack)(?:\s*([+-])\s*(\d+))?)$/.exec(relation);
    if (!m) return { why: `not a relation: ${relation}` };
    const [, whole, base, field, sign, amount] = m;
    if (whole === 'snd_nxt') return this.next(this.s.src, 'snd_nxt');
    if (whole === 'rcv_nxt') return this.next(this.s.dst, 'rcv_nxt');
    const offset = (sign === '-' ? -1 : 1) * Number(amount ?? 0);
    let ref: TcpPacket | undefined;
    let what: string;
    if (base === 'answered') {
      ref = this.s.answered?.packet;
      what = 'no packet of the flow came to the sender before it';
    } else {
      // The latest SYN (SYN-ACK) before the RST: retransmissions repeat the first one's
      // numbers, and where a 4-tuple is reused (a new SYN on a port the peer still
      // holds) it is the current attempt's, not an earlier connection's.
      const pick = base === 'syn' ? isSyn : isSynAck;
      ref = [...this.before].reverse().find(pick);
      what = `no ${base === 'syn' ? 'SYN' : 'SYN-ACK'} on the flow before it`;
    }
    if (!ref) return { why: `${what} at ${this.s.point}` };
    return { value: seqAdd(field === 'seq' ? ref.seq : ref.ack, offset) };
  }

  /** The highest sequence number past anything `address` sent on the flow (RSTs take no sequence space). */
  private next(address: string, name: string): Resolved {
    let best: number | undefined;
    for (const q of this.before) {
      if (q.src !== address || isRst(q)) continue;
      const end = seqEnd(q);
      if (best === undefined || seqAfter(end, best)) best = end;
    }
    return best === undefined ? { why: `${name}: nothing from ${address} on the flow before it at ${this.s.point}` } : { value: best };
  }
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

function checkRst(e: RstExpectation, s: RstSighting, obs: Observations, captured: Set<CapturePoint>): FieldCheck[] {
  const checks: FieldCheck[] = [];
  const add = (field: string, expected: string, seen: string, ok: boolean, weight = 1): void => {
    checks.push({ field, expected, seen, ok, weight });
  };

  add('from', e.from, `${s.from ?? 'unknown'} (first seen at ${s.point}${s.fromBy === 'ttl' ? `, judged from TTL ${s.packet.ttl}` : ''})`, s.from === e.from, 2);

  // The IP source: a firewall REJECT (and a forged segment) poses as an end of the flow.
  const sources = e.posingAs !== undefined ? [END_ADDRESS[e.posingAs]] : e.from === 'firewall' ? FIREWALL_ADDRESSES : [END_ADDRESS[e.from]];
  const sourceExpected = e.posingAs !== undefined ? `${END_ADDRESS[e.posingAs]} (${e.posingAs})` : e.from === 'firewall' ? `${FIREWALL_ADDRESSES.join(' or ')} (firewall's own)` : `${END_ADDRESS[e.from]} (${e.from}'s own)`;
  add(e.posingAs !== undefined ? 'posingAs' : 'source', sourceExpected, hostLabel(s.src), sources.includes(s.src));

  add('to', e.to, hostLabel(s.dst), s.to === e.to, 2);

  if (e.conn !== undefined) {
    const ports = connPorts(obs.conns[e.conn]);
    const seen = `ports ${s.sport} > ${s.dport}${s.conns.length > 0 ? ` (${s.conns.join('|')})` : ''}`;
    // The connection says which RST is meant; the other fields say what it should look like.
    if (!ports) add('conn', `${e.conn} (its ports are unknown: no such connection observed)`, seen, false, 4);
    else add('conn', `${e.conn} (ports ${ports[0]} <> ${ports[1]})`, seen, onPorts(s.sport, s.dport, ports), 4);
  }

  if (e.flags !== undefined) {
    const ok = isRst(s.packet) && ((s.flags & TCP.ACK) !== 0) === (e.flags === 'R.');
    add('flags', e.flags, s.flagText, ok);
  }

  const view = new FlowView(obs, s);
  for (const field of ['seq', 'ack'] as const) {
    const relation = e[field];
    if (relation === undefined) continue;
    const r = view.resolve(relation);
    const seen = s[field];
    if (r.value === undefined) add(field, `${relation} (unknown: ${r.why})`, String(seen), false);
    else add(field, typeof relation === 'number' ? String(relation) : `${relation} = ${r.value}`, String(seen), r.value === seen);
  }

  if (e.answers !== undefined) {
    const seen = s.answered ? `${segmentKind(s.answered.packet)} (at ${s.answered.point}: ${formatPacket(s.answered.packet)})` : `nothing (no packet came to the sender before it at ${s.point})`;
    add('answers', e.answers, seen, s.answered !== undefined && segmentKind(s.answered.packet) === e.answers);
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

/** The packets of a sighting's flow around it, at its point: a few before, the RST, one or two after. */
function contextOf(obs: Observations, s: RstSighting, before = 4, after = 2): PacketRef[] {
  const packets = packetsAt(obs, s.point);
  const rstIndex = s.seen[s.point]?.index ?? 0;
  const flow: PacketRef[] = [];
  packets.forEach((packet, index) => {
    if (sameFlow(packet, s)) flow.push({ point: s.point, index, packet });
  });
  const at = flow.findIndex((r) => r.index === rstIndex);
  return flow.slice(Math.max(0, at - before), at + 1 + after);
}

/** The last packets of a connection's flow, where no RST was there to centre on. */
function connContext(obs: Observations, connId: string | undefined, captured: Set<CapturePoint>, max = 6): PacketRef[] {
  const ports = connPorts(connId === undefined ? undefined : obs.conns[connId]);
  if (!ports) return [];
  for (const point of PATH_TO_A.slice().reverse().filter((pt) => captured.has(pt))) {
    const refs: PacketRef[] = [];
    packetsAt(obs, point).forEach((packet, index) => {
      if (onPorts(packet.sport, packet.dport, ports)) refs.push({ point, index, packet });
    });
    if (refs.length > 0) return refs.slice(-max);
  }
  return [];
}

interface RstJudgement {
  result: Result;
  matched: RstSighting[];
}

function judgeRst(line: number, e: RstExpectation, sightings: RstSighting[], obs: Observations, captured: Set<CapturePoint>): RstJudgement {
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

function judgeNoRst(line: number, sightings: RstSighting[], obs: Observations): Result {
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

function judgeApp(line: number, e: Extract<Expectation, { app: unknown }>['app'], obs: Observations, captured: Set<CapturePoint>): Result {
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

function judgeCounter(line: number, e: Extract<Expectation, { counter: unknown }>['counter'], obs: Observations): Result {
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
  return `  ${s.state} ${s.local}:${s.localPort} ${s.remote}:${s.remotePort}`;
}

function judgeSockets(line: number, e: Extract<Expectation, { sockets: unknown }>['sockets'], obs: Observations): Result {
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

// ---------------------------------------------------------------------------------------
// The evaluator

export function verify(expect: { expectation: Expectation; line: number }[], obs: Observations, opts: VerifyOptions): Verdict {
  const captured = capturedPoints(opts);
  const rsts = rstSightings(obs, opts);
  const results: Result[] = [];
  const claimed = new Set<RstSighting>();
  let hasNoRst = false;

  for (const { expectation, line } of expect) {
    const x = exhaustive(expectation);
    switch (x.kind) {
      case 'rst': {
        const { result, matched } = judgeRst(line, x.rst, rsts, obs, captured);
        results.push(result);
        // An expectation claims as many sightings as it counts, unclaimed ones first, so
        // that two expectations of one RST each still leave a second RST unexplained.
        const order = [...matched.filter((s) => !claimed.has(s)), ...matched.filter((s) => claimed.has(s))];
        for (const s of order.slice(0, x.rst.count ?? 1)) claimed.add(s);
        break;
      }
      case 'noRst':
        hasNoRst = true;
        results.push(judgeNoRst(line, rsts, obs));
        break;
      case 'app':
        results.push(judgeApp(line, x.app, obs, captured));
        break;
      case 'counter':
        results.push(judgeCounter(line, x.counter, obs));
        break;
      case 'sockets':
        results.push(judgeSockets(line, x.sockets, obs));
        break;
      default: {
        const unreachable: never = x;
        throw new Error(`unknown expectation ${JSON.stringify(unreachable)}`);
      }
    }
  }

  // Exactly the expected RSTs: each one no rst expectation claimed fails on its own. A
  // noRst expectation already lists every RST, so it is not reported twice.
  if (!hasNoRst) {
    for (const s of rsts) {
      if (claimed.has(s)) continue;
      results.push({
        line: 0,
        kind: 'unexpected-rst',
        passed: false,
        summary: 'no RST other than the expected ones',
        detail: `unexpected ${describeRst(s)}`,
        context: contextOf(obs, s),
      });
    }
  }
  return { passed: results.every((r) => r.passed), results, rsts };
}

type Tagged =
  | { kind: 'rst'; rst: RstExpectation }
  | { kind: 'noRst' }
  | { kind: 'app'; app: Extract<Expectation, { app: unknown }>['app'] }
  | { kind: 'counter'; counter: Extract<Expectation, { counter: unknown }>['counter'] }
  | { kind: 'sockets'; sockets: Extract<Expectation, { sockets: unknown }>['sockets'] };

/**
 * The schema's expectations are keyed objects ({ rst: ... }); this tags them so that the
 * evaluator's switch is exhaustive. Adding a kind to the schema breaks the build here
 * until it is handled.
 */
function exhaustive(e: Expectation): Tagged {
  if ('rst' in e) return { kind: 'rst', rst: e.rst };
  if ('noRst' in e) return { kind: 'noRst' };
  if ('app' in e) return { kind: 'app', app: e.app };
  if ('counter' in e) return { kind: 'counter', counter: e.counter };
  if ('sockets' in e) return { kind: 'sockets', sockets: e.sockets };
  const unreachable: never = e;
  throw new Error(`unknown expectation ${JSON.stringify(unreachable)}`);
}
