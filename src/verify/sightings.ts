// RSTs as events, not as packets: the same RST crosses up to four capture points, so it is
// merged into one RstSighting (who really sent it, which IP source it carried, where it was
// seen with which TTL, what it answered, the kernel's reason). The judges (judge.ts) match
// expectations against these sightings.
import { mergeAcrossPoints, type Copy, type WireEvent } from './merge.js';
import { isRst, madeBeforeRouter, segmentKind } from './signatures.js';
import {
  DEFAULT_TTL, FIRST_POINT_PAST_ROUTER, PATH_TO_A, POINT_HOST, TCP, flagString, hostLabel, hostOf, pathOf,
  type CapturePoint, type ConnObservation, type Host, type KernelReset, type LabHost, type Observations, type TcpPacket,
} from '../vocabulary.js';

// ---------------------------------------------------------------------------------------
// Types

/** One packet of a capture point: `obs.packets[point][index]`. */
export interface PacketRef {
  point: CapturePoint;
  index: number;
  packet: TcpPacket;
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
  from: LabHost | undefined;
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


export interface VerifyOptions {
  /** the capture points this run captured: a point not captured proves neither presence nor absence */
  capture: CapturePoint[];
}


// ---------------------------------------------------------------------------------------
// Packet helpers

// The segment helpers live with the signatures (signatures.ts); re-exported for the verifier's modules.
export { isRst, isSyn, isSynAck, segmentKind } from './signatures.js';

export function sameFlow(p: TcpPacket, q: { src: string; dst: string; sport: number; dport: number }): boolean {
  return (
    (p.src === q.src && p.dst === q.dst && p.sport === q.sport && p.dport === q.dport) ||
    (p.src === q.dst && p.dst === q.src && p.sport === q.dport && p.dport === q.sport)
  );
}

export function packetsAt(obs: Observations, point: CapturePoint): TcpPacket[] {
  return obs.packets[point] ?? [];
}

/** The points this run captured; packets of any other point are not looked at. */
export function capturedPoints(opts: VerifyOptions): Set<CapturePoint> {
  return new Set<CapturePoint>(opts.capture);
}

// ---------------------------------------------------------------------------------------
// Connections

/** [client-side port, server-side port] of a connection, from whichever end knows them. */
export function connPorts(c: ConnObservation | undefined): [number, number] | undefined {
  if (!c) return undefined;
  const i = c.initiator;
  if (i.localPort !== undefined && i.remotePort !== undefined) return [i.localPort, i.remotePort];
  const a = c.acceptor;
  if (a?.localPort !== undefined && a.remotePort !== undefined) return [a.remotePort, a.localPort];
  return undefined;
}

export function onPorts(sport: number, dport: number, ports: [number, number]): boolean {
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

/**
 * Every RST of the run as one event per RST put on the wire, merged across the capture
 * points (merge.ts), with its real sender, the packet it answered and the kernel's reason.
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

function sightingOf(g: WireEvent, obs: Observations, captured: Set<CapturePoint>): RstSighting {
  const any = g.seen.values().next().value as Copy;
  const path = pathOf(any.packet);
  const seenAt = path.filter((point) => g.seen.has(point));
  const firstIndex = path.findIndex((point) => g.seen.has(point));
  const point = path[firstIndex] as CapturePoint;
  const first = g.seen.get(point) as Copy;
  const p = first.packet;

  // The sender is the owner of the first capture point on the path that saw it: a packet
  // leaves its sender before any other point can see it. Where an earlier point was not
  // captured, that rule would credit whoever was watching; then the TTL decides, because
  // the firewall's forwarding takes one off (docs/DESIGN.md "Capture and verification").
  const blindBefore = path.slice(0, firstIndex).some((pt) => !captured.has(pt));
  let from: LabHost | undefined = POINT_HOST[point];
  let fromBy: RstSighting['fromBy'] = 'path';
  if (blindBefore) {
    fromBy = 'ttl';
    const start = POINT_HOST[path[0] as CapturePoint];
    if (firstIndex < FIRST_POINT_PAST_ROUTER) from = start;
    else from = madeBeforeRouter(p.ttl, DEFAULT_TTL) ? 'firewall' : start;
  }

  // Heading to net A and first seen as it entered the firewall from net B, while the
  // server's own point watched and never saw it: another host on net B sent it (an
  // impostor holding the server's address; only a lab with a switch on net B has one).
  if (!blindBefore && path === PATH_TO_A && point === 'firewall-b' && captured.has('server')) from = 'impostor';

  const seen: Partial<Record<CapturePoint, RstSeen>> = {};
  for (const pt of seenAt) {
    const raw = g.seen.get(pt) as Copy;
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
  const word = s.packet.ipVersion === 6 ? 'hlim' : 'ttl'; // as tcpdump writes them
  const ttls = s.seenAt.map((pt) => `${pt} ${word} ${s.seen[pt]?.ttl}`).join(', ');
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
// The packets around a sighting, for failure details

/** The packets of a sighting's flow around it, at its point: a few before, the RST, one or two after. */
export function contextOf(obs: Observations, s: RstSighting, before = 4, after = 2): PacketRef[] {
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
export function connContext(obs: Observations, connId: string | undefined, captured: Set<CapturePoint>, max = 6): PacketRef[] {
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
