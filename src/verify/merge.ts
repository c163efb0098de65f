// The same segment crosses up to four capture points. Merged, it is one event on the
// wire with the points that saw it, which is what a ladder shows and what the verifier
// judges (who sent a RST is told by the first point of its path that saw it).
import type { CapturePoint, IcmpError, TcpPacket } from '../vocabulary.js';

/** Copies of one segment further apart than this are two segments (a retransmission). */
export const MERGE_WINDOW_S = 0.05;

export interface Copy<P = TcpPacket> {
  point: CapturePoint;
  index: number;
  packet: P;
}

export interface WireEvent<P = TcpPacket> {
  key: string;
  /** the copy seen first */
  first: Copy<P>;
  seen: Map<CapturePoint, Copy<P>>;
  lastTime: number;
}

function keyOf(p: TcpPacket): string {
  return [p.src, p.dst, p.sport, p.dport, p.seq, p.ack, p.flags, p.payloadLength].join('|');
}

function icmpKeyOf(p: IcmpError): string {
  const q = p.quoted;
  return [p.src, p.dst, p.type, p.code, q.src, q.dst, q.sport, q.dport, q.seq].join('|');
}

/** The ICMP errors of every capture point as wire events, like mergeAcrossPoints. */
export function mergeIcmpAcrossPoints(packets: Partial<Record<CapturePoint, IcmpError[]>>, points: readonly CapturePoint[]): WireEvent<IcmpError>[] {
  return mergeBy(packets, points, () => true, icmpKeyOf);
}

/**
 * Merge the packets of every capture point into wire events, in time order. Each copy
 * goes to the nearest earlier event with the same segment that lacks its point, so two
 * identical segments (a retransmission) stay two events even where a copy was lost.
 */
export function mergeAcrossPoints(
  packets: Partial<Record<CapturePoint, TcpPacket[]>>,
  points: readonly CapturePoint[],
  keep: (p: TcpPacket) => boolean = () => true,
): WireEvent[] {
  return mergeBy(packets, points, keep, keyOf);
}

function mergeBy<P extends { time: number }>(
  packets: Partial<Record<CapturePoint, P[]>>,
  points: readonly CapturePoint[],
  keep: (p: P) => boolean,
  keyOf: (p: P) => string,
): WireEvent<P>[] {
  const copies: Copy<P>[] = [];
  for (const point of points) {
    (packets[point] ?? []).forEach((packet, index) => {
      if (keep(packet)) copies.push({ point, index, packet });
    });
  }
  copies.sort((x, y) => x.packet.time - y.packet.time);
  const events: WireEvent<P>[] = [];
  const open = new Map<string, WireEvent<P>[]>();
  for (const copy of copies) {
    const key = keyOf(copy.packet);
    const t = copy.packet.time;
    let best: WireEvent<P> | undefined;
    for (const e of open.get(key) ?? []) {
      if (e.seen.has(copy.point) || t - e.lastTime > MERGE_WINDOW_S) continue;
      if (!best || t - e.lastTime < t - best.lastTime) best = e;
    }
    if (best) {
      best.seen.set(copy.point, copy);
      best.lastTime = t;
    } else {
      const e: WireEvent<P> = { key, first: copy, seen: new Map([[copy.point, copy]]), lastTime: t };
      events.push(e);
      open.set(key, [...(open.get(key) ?? []), e]);
    }
  }
  return events;
}
