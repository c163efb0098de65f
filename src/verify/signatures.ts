// What a RST looks like on the wire, written once for the verifier (judge.ts, sightings.ts)
// and for `rstlab diagnose` (src/diagnose/): sequence arithmetic, the seq/ack relations of a
// RST to its flow, the shape of a RST (flags, what it answered, seq/ack), and the TTL
// judgement that tells a packet made by its endpoint from one made by a device in between.
// The signatures of the causes themselves are the rst expectations of scenarios/*.yaml:
// the verifier checks them field by field (judge.ts) and diagnose matches them with the
// same functions below (diagnose/signature-match.ts), so the two cannot drift apart.
import { TCP, flagString, parseSeqRelation, type TcpPacket } from '../vocabulary.js';

// ---------------------------------------------------------------------------------------
// 32-bit sequence arithmetic (RFC 9293 §3.4: all comparisons are modulo 2^32)

export function seqAdd(a: number, n: number): number {
  return (((a + n) % 0x1_0000_0000) + 0x1_0000_0000) % 0x1_0000_0000;
}

/** a is after b in sequence space */
export function seqAfter(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** The sequence number just past a segment: SYN and FIN each occupy one (RFC 9293 §3.4). */
export function seqEnd(p: TcpPacket): number {
  return seqAdd(p.seq, p.payloadLength + (p.flags & TCP.SYN ? 1 : 0) + (p.flags & TCP.FIN ? 1 : 0));
}

// ---------------------------------------------------------------------------------------
// Segments

export const isRst = (p: TcpPacket): boolean => (p.flags & TCP.RST) !== 0;
export const isSyn = (p: TcpPacket): boolean => (p.flags & (TCP.SYN | TCP.ACK)) === TCP.SYN;
export const isSynAck = (p: TcpPacket): boolean => (p.flags & (TCP.SYN | TCP.ACK)) === (TCP.SYN | TCP.ACK);

/** What kind of segment a packet is, in the words of a RST expectation's `answers`. */
export function segmentKind(p: TcpPacket): 'SYN' | 'SYN-ACK' | 'FIN' | 'data' | 'ACK' | 'RST' | 'other' {
  if (isRst(p)) return 'RST';
  if (isSyn(p)) return 'SYN';
  if (isSynAck(p)) return 'SYN-ACK';
  if (p.flags & TCP.FIN) return 'FIN';
  if (p.payloadLength > 0) return 'data';
  if (p.flags & TCP.ACK) return 'ACK';
  return 'other';
}

/** `R` or `R.` as an expectation writes it: does the RST carry ACK as expected? */
export function rstFlagsMatch(expected: 'R' | 'R.', flags: number): boolean {
  return (flags & TCP.RST) !== 0 && ((flags & TCP.ACK) !== 0) === (expected === 'R.');
}

// ---------------------------------------------------------------------------------------
// seq / ack relations (the grammar is the vocabulary's SEQ_RELATION)

export interface Resolved {
  value?: number;
  /** why it could not be resolved */
  why?: string;
}

/**
 * A RST's flow as one capture point saw it before the RST: resolves the relations of a
 * RST expectation (`answered.ack`, `syn.seq + 1`, `snd_nxt`, ...) to numbers.
 */
export class FlowView {
  constructor(
    /** the flow's packets at this point, before the RST, in capture order */
    private readonly before: readonly TcpPacket[],
    private readonly rst: { src: string; dst: string },
    /** the last packet of the flow that came to the RST's sender before it */
    private readonly answered: TcpPacket | undefined,
    /** the capture point or file, for messages */
    private readonly where: string,
  ) {}

  resolve(relation: number | string): Resolved {
    const r = parseSeqRelation(relation);
    if (!r) return { why: `not a relation: ${relation}` };
    if (r.kind === 'number') return { value: r.value };
    if (r.kind !== 'packet') return this.next(r.kind === 'snd_nxt' ? this.rst.src : this.rst.dst, r.kind);
    const { base, field, offset } = r;
    let ref: TcpPacket | undefined;
    let what: string;
    if (base === 'answered') {
      ref = this.answered;
      what = 'no packet of the flow came to the sender before it';
    } else {
      // The latest SYN (SYN-ACK) before the RST: retransmissions repeat the first one's
      // numbers, and where a 4-tuple is reused (a new SYN on a port the peer still
      // holds) it is the current attempt's, not an earlier connection's.
      const pick = base === 'syn' ? isSyn : isSynAck;
      ref = [...this.before].reverse().find(pick);
      what = `no ${base === 'syn' ? 'SYN' : 'SYN-ACK'} on the flow before it`;
    }
    if (!ref) return { why: `${what} at ${this.where}` };
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
    return best === undefined ? { why: `${name}: nothing from ${address} on the flow before it at ${this.where}` } : { value: best };
  }
}

// ---------------------------------------------------------------------------------------
// The shape of a RST: the fields of an rst expectation that the wire alone can check

/** The part of an rst expectation that describes the segment itself. */
export interface RstShape {
  flags?: 'R' | 'R.';
  answers?: string;
  seq?: number | string;
  ack?: number | string;
}

export interface ShapeCheck {
  field: 'flags' | 'answers' | 'seq' | 'ack';
  expected: string;
  seen: string;
  ok: boolean;
}

/** Each field of a shape against one RST, as the verifier and diagnose both judge it. */
export function checkShape(shape: RstShape, rst: TcpPacket, answered: TcpPacket | undefined, view: FlowView): ShapeCheck[] {
  const checks: ShapeCheck[] = [];
  if (shape.flags !== undefined) {
    checks.push({ field: 'flags', expected: shape.flags, seen: flagString(rst.flags), ok: rstFlagsMatch(shape.flags, rst.flags) });
  }
  for (const field of ['seq', 'ack'] as const) {
    const relation = shape[field];
    if (relation === undefined) continue;
    const r = view.resolve(relation);
    const seen = rst[field];
    if (r.value === undefined) checks.push({ field, expected: `${relation} (unknown: ${r.why})`, seen: String(seen), ok: false });
    else checks.push({ field, expected: typeof relation === 'number' ? String(relation) : `${relation} = ${r.value}`, seen: String(seen), ok: r.value === seen });
  }
  if (shape.answers !== undefined) {
    checks.push({ field: 'answers', expected: shape.answers, seen: answered ? segmentKind(answered) : 'nothing', ok: answered !== undefined && segmentKind(answered) === shape.answers });
  }
  return checks;
}

// ---------------------------------------------------------------------------------------
// MAC: which box put a packet on this link

/**
 * A RST's source MAC against the MACs of every earlier packet from its IP source at the same
 * point (`earlier`: the packets before it). Another MAC means another box sent it: a host
 * that took the address (a duplicate address). Undefined where there is nothing to compare.
 */
export function sourceMacChange(earlier: readonly TcpPacket[], rst: TcpPacket): { earlier: string[]; changed: boolean | undefined } {
  const macs = [...new Set(earlier.filter((q) => q.src === rst.src && !isRst(q) && q.srcMac).map((q) => q.srcMac as string))];
  return { earlier: macs, changed: rst.srcMac === undefined || macs.length === 0 ? undefined : !macs.includes(rst.srcMac) };
}

// ---------------------------------------------------------------------------------------
// TTL: who made a packet

/** The initial TTLs stacks use (Linux/BSD 64, Windows 128, network gear 255; some 32). */
const INITIAL_TTLS = [32, 64, 128, 255];

/** The initial TTL a packet most likely left with: the smallest common one not below it. */
export function initialTtl(ttl: number): number {
  return INITIAL_TTLS.find((t) => t >= ttl) ?? 255;
}

/** How many routers a packet crossed before the capture point saw it. */
export function hopsOf(ttl: number): number {
  return initialTtl(ttl) - ttl;
}

/**
 * A RST's TTL against the TTL of its IP source's other packets at the same point: every
 * router takes one off (RFC 791, RFC 8200 hop limit), so the packets of one sender along
 * one path all arrive with the same TTL. A RST with more TTL left was made closer to the
 * capture point than the real sender: by a device in between that forged the source
 * (a firewall REJECT, RST injection). Less left: it came from further away.
 */
export function ttlJudgement(rstTtl: number, senderTtls: readonly number[]): 'same' | 'closer' | 'further' | 'no-other-packets' {
  if (senderTtls.length === 0) return 'no-other-packets';
  const usual = mode(senderTtls);
  if (rstTtl === usual) return 'same';
  return hopsOf(rstTtl) < hopsOf(usual) ? 'closer' : 'further';
}

/**
 * Inside the lab: a RST first seen past the firewall that still has the initial TTL was
 * made by the firewall, not forwarded by it (the lab's hosts all start at 64).
 */
export function madeBeforeRouter(ttl: number, defaultTtl: number): boolean {
  return ttl >= defaultTtl;
}

function mode(xs: readonly number[]): number {
  const counts = new Map<number, number>();
  for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
}
