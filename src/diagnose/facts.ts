// What a capture from anywhere says about one RST: its flow and the roles of the two ends,
// how its seq/ack relate to the connection, its TTL against the sender's other packets, its
// source MAC against the sender's earlier MACs, and what came before it on the 4-tuple
// (handshake, data, FINs, idle time, keepalive probes, a challenge ACK, a gratuitous ARP).
// No lab address is assumed: roles come from who sent the SYN.
import type { ArpPacket } from '../capture/contents.js';
import { FlowView, hopsOf, isRst, isSyn, isSynAck, seqAdd, sourceMacChange, ttlJudgement } from '../verify/signatures.js';
import { TCP, type TcpPacket } from '../vocabulary.js';

export type SentBy = 'endpoint' | 'in-between' | 'unknown';

export interface RstFacts {
  index: number;
  rst: TcpPacket;
  /** the flow's packets before the RST, in capture order */
  before: TcpPacket[];
  /** the last packet of the flow that came to the RST's sender before it */
  answered: TcpPacket | undefined;
  view: FlowView;
  /** the RST's sender in the connection: the end that sent the SYN, the one that answered it, or unknown (no SYN captured) */
  senderRole: 'initiator' | 'acceptor' | 'unknown';
  /** how seq/ack relate to the connection, in words */
  relation: string;
  ttl: { value: number; judgement: ReturnType<typeof ttlJudgement>; senderTtls: number[]; hops: number; receiverHops: number | undefined };
  mac: { rst?: string; earlier: string[]; changed: boolean | undefined };
  /** a gratuitous ARP for the sender's address before the RST */
  gratuitousArp: ArpPacket | undefined;
  sentBy: SentBy;
  sentByWhy: string;
  state: {
    handshake: 'none' | 'syn' | 'syn-ack' | 'established';
    initiatorData: number;
    acceptorData: number;
    finFromSender: boolean;
    finFromReceiver: boolean;
    /** seconds of silence on the flow before the RST itself */
    idleBeforeRst: number | undefined;
    /** seconds of silence on the flow before the segment the RST answered */
    idleBeforeAnswered: number | undefined;
    /** keepalive probes from the RST's sender just before it (RFC 1122 §4.2.3.6: seq = snd_nxt - 1) */
    keepaliveProbes: number;
    /** the RST answers an ACK that came back for the sender's own SYN instead of a SYN-ACK (RFC 5961 §4) */
    challengeAck: boolean;
    /** data from the receiver that the sender acknowledged and never answered with data of its own */
    unreadBytes: number;
  };
}

export function sameFlow(p: TcpPacket, q: TcpPacket): boolean {
  return (
    (p.src === q.src && p.dst === q.dst && p.sport === q.sport && p.dport === q.dport) ||
    (p.src === q.dst && p.dst === q.src && p.sport === q.dport && p.dport === q.sport)
  );
}

/** The facts of every RST of one capture, in capture order. */
export function rstFacts(packets: TcpPacket[], arps: ArpPacket[], where: string): RstFacts[] {
  const out: RstFacts[] = [];
  packets.forEach((rst, index) => {
    if (isRst(rst)) out.push(factsOf(packets, arps, index, where));
  });
  return out;
}

function factsOf(packets: TcpPacket[], arps: ArpPacket[], index: number, where: string): RstFacts {
  const rst = packets[index] as TcpPacket;
  const before = packets.slice(0, index).filter((q) => sameFlow(q, rst));
  const fromSender = (q: TcpPacket) => q.src === rst.src && q.sport === rst.sport;
  const toSender = (q: TcpPacket) => !fromSender(q);
  const answered = [...before].reverse().find((q) => toSender(q) && !isRst(q));
  const view = new FlowView(before, rst, answered, where);

  // Roles: whoever sent the latest SYN started the connection (a reused 4-tuple restarts it).
  const syn = [...before].reverse().find(isSyn);
  const senderRole = syn ? (fromSender(syn) ? 'initiator' : 'acceptor') : 'unknown';

  // TTL: the sender's other packets on this flow, else anything else from its address here.
  const own = before.filter((q) => fromSender(q) && !isRst(q));
  const others = own.length > 0 ? own : packets.filter((q, i) => i !== index && q.src === rst.src && !isRst(q));
  const senderTtls = others.map((q) => q.ttl);
  const judgement = ttlJudgement(rst.ttl, senderTtls);
  const receiverPackets = before.filter(toSender);
  const receiverHops = receiverPackets.length > 0 ? hopsOf((receiverPackets[receiverPackets.length - 1] as TcpPacket).ttl) : undefined;

  // MAC: a RST from another MAC than every earlier packet of its IP source came from another box.
  const { earlier, changed } = sourceMacChange(packets.slice(0, index), rst);
  const gratuitousArp = [...arps].reverse().find((a) => a.gratuitous && a.senderIp === rst.src && a.time <= rst.time);

  const { sentBy, why } = whoSent(rst, judgement, senderTtls, changed, gratuitousArp, receiverHops);

  const initiatorIsSender = senderRole !== 'acceptor';
  const dataOf = (mine: boolean) => before.filter((q) => (fromSender(q) === mine) && !isRst(q)).reduce((n, q) => n + q.payloadLength, 0);
  const senderData = dataOf(true);
  const receiverData = dataOf(false);
  const handshake = !syn ? (before.length > 0 ? 'established' : 'none') : before.some((q) => q.flags & TCP.ACK && !isSynAck(q) && q.src === syn.src) ? 'established' : before.some(isSynAck) ? 'syn-ack' : 'syn';

  let idleBeforeAnswered: number | undefined;
  if (answered) {
    const at = before.indexOf(answered);
    const prev = before[at - 1];
    if (prev) idleBeforeAnswered = answered.time - prev.time;
  }

  // Keepalive probes: segments of 0 or 1 byte from the sender with seq = snd_nxt - 1, just before it.
  let keepaliveProbes = 0;
  const sndNxt = view.resolve('snd_nxt').value;
  if (sndNxt !== undefined) {
    for (const q of [...before].reverse()) {
      if (!fromSender(q)) continue;
      if (q.payloadLength <= 1 && !(q.flags & (TCP.SYN | TCP.FIN)) && q.seq === seqAdd(sndNxt, -1)) keepaliveProbes++;
      else break;
    }
  }

  // A challenge ACK: the sender sent a SYN, and the peer answered with a bare ACK that does not acknowledge it.
  const lastFromSender = [...before].reverse().find((q) => fromSender(q) && !isRst(q));
  const challengeAck = answered !== undefined && !isSynAck(answered) && (answered.flags & TCP.ACK) !== 0 && lastFromSender !== undefined && isSyn(lastFromSender) && answered.ack !== seqAdd(lastFromSender.seq, 1);

  // Unread data: bytes the receiver sent after the sender's last data segment, acknowledged by the sender.
  let unreadBytes = 0;
  for (const q of [...before].reverse()) {
    if (fromSender(q) && q.payloadLength > 0) break;
    if (!fromSender(q)) unreadBytes += q.payloadLength;
  }

  return {
    index,
    rst,
    before,
    answered,
    view,
    senderRole,
    relation: relationOf(rst, before, answered, view, challengeAck),
    ttl: { value: rst.ttl, judgement, senderTtls, hops: hopsOf(rst.ttl), receiverHops },
    mac: { rst: rst.srcMac, earlier, changed },
    gratuitousArp,
    sentBy,
    sentByWhy: why,
    state: {
      handshake,
      initiatorData: initiatorIsSender ? senderData : receiverData,
      acceptorData: initiatorIsSender ? receiverData : senderData,
      finFromSender: before.some((q) => fromSender(q) && (q.flags & TCP.FIN) !== 0),
      finFromReceiver: before.some((q) => toSender(q) && (q.flags & TCP.FIN) !== 0),
      idleBeforeRst: before.length > 0 ? rst.time - (before[before.length - 1] as TcpPacket).time : undefined,
      idleBeforeAnswered,
      keepaliveProbes,
      challengeAck,
      unreadBytes,
    },
  };
}

/**
 * Who made the RST, from what the wire can tell: a new MAC for the address after a
 * gratuitous ARP (another host now owns it), the TTL against the sender's other packets
 * (more left: made closer than the sender), else hop counts against the receiver's.
 */
function whoSent(rst: TcpPacket, judgement: ReturnType<typeof ttlJudgement>, senderTtls: number[], macChanged: boolean | undefined, arp: ArpPacket | undefined, receiverHops: number | undefined): { sentBy: SentBy; why: string } {
  if (macChanged && arp) return { sentBy: 'endpoint', why: `a host that owns ${rst.src} sent it, but not the one that talked before: its MAC ${rst.srcMac} differs from the earlier packets' and it announced the address by a gratuitous ARP` };
  if (judgement === 'closer') return { sentBy: 'in-between', why: `TTL ${rst.ttl} where ${rst.src}'s other packets arrive with ${senderTtls.join('/')}: made fewer hops away than the sender, by a device in between` };
  if (judgement === 'same') return { sentBy: 'endpoint', why: `TTL ${rst.ttl}, the same as ${rst.src}'s other packets: it came the same way, from the endpoint` + (macChanged ? ` (but from another MAC, ${rst.srcMac})` : '') };
  if (judgement === 'further') return { sentBy: 'unknown', why: `TTL ${rst.ttl}, lower than ${rst.src}'s other packets (${senderTtls.join('/')}): a path change or another sender` };
  const hops = hopsOf(rst.ttl);
  if (receiverHops !== undefined && hops < receiverHops) return { sentBy: 'endpoint', why: `no other packet from ${rst.src}; the RST crossed ${hops} router(s), the peer's packets ${receiverHops}: the capture is on the sender's side` };
  if (receiverHops !== undefined && hops > receiverHops) return { sentBy: 'endpoint', why: `no other packet from ${rst.src}; the RST crossed ${hops} router(s) to get here (TTL ${rst.ttl}), the peer's packets ${receiverHops}: it came from beyond a router, probably the endpoint (a forger beyond that router would look the same)` };
  return { sentBy: 'unknown', why: `no other packet from ${rst.src} to compare its TTL ${rst.ttl} with; it crossed as many routers as the peer's packets (${hops}): either both ends share this link or a device near the capture made it` };
}

function relationOf(rst: TcpPacket, before: TcpPacket[], answered: TcpPacket | undefined, view: FlowView, challengeAck: boolean): string {
  const hasAck = (rst.flags & TCP.ACK) !== 0;
  if (answered && isSyn(answered) && rst.seq === 0 && hasAck && rst.ack === seqAdd(answered.seq, 1)) return 'answers a SYN (seq 0, ack = SYN + 1: no socket took it, RFC 9293 §3.5.2)';
  if (challengeAck && answered && rst.seq === answered.ack) return 'answers a challenge ACK (seq = its ack: the SYN sender had no matching connection, RFC 5961 §4)';
  // What the receiver expects next: everything the sender sent before (RFC 5961 §3: only an exact match resets).
  const rcvNxt = view.resolve('snd_nxt').value;
  const ackRel = hasAck ? `, ack ${rst.ack}${view.resolve('rcv_nxt').value === rst.ack ? ' = all the peer sent' : ''}` : ', no ACK';
  if (rcvNxt === undefined) {
    if (answered && rst.seq === answered.ack) return `seq = the ack of the segment it answers${ackRel} (nothing from the sender seen before)`;
    return `seq ${rst.seq}${ackRel}; nothing from the sender seen before to relate it to`;
  }
  if (rst.seq === rcvNxt) return `acceptable: seq = the next sequence number the receiver expects (${rcvNxt})${ackRel}`;
  const d = (rst.seq - rcvNxt) | 0;
  const last = before.filter((q) => q.src === rst.dst).pop();
  const win = last ? last.window * 2 ** (before.find((q) => q.src === rst.dst && q.options.wscale !== undefined)?.options.wscale ?? 0) : 0;
  if (d > 0 && d < win) return `in the window but not exact (seq ${rst.seq}, expected ${rcvNxt}): the receiver answers with a challenge ACK and keeps the connection (RFC 5961 §3)`;
  return `out of window (seq ${rst.seq}, expected ${rcvNxt})${ackRel}: the receiver drops it`;
}

