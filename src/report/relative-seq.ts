// Relative sequence numbers, as Wireshark shows them by default: each direction of a
// connection counts from its own initial sequence number, so a class can follow seq/ack by
// eye (SYN seq 0, SYN-ACK seq 0 ack 1, first data byte 1...). The ISN itself is random
// (RFC 9293 §3.4.1), which is why raw numbers are hard to read and say nothing in a ladder.
import { TCP, type TcpPacket } from '../vocabulary.js';

export interface SeqAck {
  seq: number;
  ack: number;
  /** the window in bytes: scaled by the shift both SYNs agreed on (RFC 7323 §2.2), as
   * Wireshark's Win= shows it; raw where the handshake was not seen or not scaled */
  win: number;
}

const flowKey = (p: TcpPacket) => `${p.src}:${p.sport}>${p.dst}:${p.dport}`;
const reverseKey = (p: TcpPacket) => `${p.dst}:${p.dport}>${p.src}:${p.sport}`;
/** The distance from base to x on the 32-bit sequence space (RFC 9293 §3.4: arithmetic mod 2^32). */
const offset = (x: number, base: number) => (x - base) >>> 0;

/**
 * seq/ack of each packet (in time order), relative to each direction's base:
 * - a SYN sets its direction's base; a new SYN on a 4-tuple with another ISN is a new
 *   connection (a reused port), so it sets a new base, as Wireshark does;
 * - a SYN-ACK sets its direction's base (the answer's own ISN);
 * - where no SYN was seen (a connection older than the capture, a RST from a closed port),
 *   the first segment seen in that direction counts from 1, as in Wireshark.
 * The ack counts from the other direction's base; while that is unknown it stays raw.
 * With `absolute`, every number is the one on the wire.
 */
export function seqNumbers(packets: readonly TcpPacket[], absolute = false): SeqAck[] {
  const wins = scaledWindows(packets);
  if (absolute) return packets.map((p, i) => ({ seq: p.seq, ack: p.ack, win: wins[i]! }));
  const base = new Map<string, number>();
  return packets.map((p, i) => {
    const fwd = flowKey(p);
    // Without its SYN, a direction's first segment is taken to follow one, so it counts
    // from 1, as in Wireshark (packet-tcp.c: base_seq = seq - 1 where no SYN was seen).
    if (p.flags & TCP.SYN) base.set(fwd, p.seq);
    else if (!base.has(fwd)) base.set(fwd, (p.seq - 1) >>> 0);
    const ackBase = base.get(reverseKey(p));
    return {
      seq: offset(p.seq, base.get(fwd)!),
      ack: ackBase === undefined || !(p.flags & TCP.ACK) ? p.ack : offset(p.ack, ackBase),
      win: wins[i]!,
    };
  });
}

/**
 * Window scaling is in force only when both the SYN and the SYN-ACK carried the option;
 * each side then shifts the windows it sends by its own count; a SYN's window is never
 * scaled (RFC 7323 §2.2, §2.3).
 */
function scaledWindows(packets: readonly TcpPacket[]): number[] {
  const shift = new Map<string, number | undefined>();
  const agreed = new Set<string>();
  return packets.map((p) => {
    const fwd = flowKey(p);
    if (p.flags & TCP.SYN) {
      const rev = reverseKey(p);
      shift.set(fwd, p.options.wscale);
      // a SYN starts a new handshake; its SYN-ACK says whether both sides scale
      const both = (p.flags & TCP.ACK) !== 0 && p.options.wscale !== undefined && shift.get(rev) !== undefined;
      for (const k of [fwd, rev]) {
        if (both) agreed.add(k);
        else agreed.delete(k);
      }
      return p.window;
    }
    return agreed.has(fwd) ? p.window * 2 ** Math.min(shift.get(fwd)!, 14) : p.window;
  });
}
