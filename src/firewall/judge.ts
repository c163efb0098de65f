// Each row decided from the captures at the four capture points (and the kernel's reason
// for a RST), never from what the socket said: ECONNREFUSED is a RST of the server, a RST
// of the firewall and an ICMP error alike (FIREWALL-TEST facts). A row's deciding segment
// is its SYN (or, for an idle row, its first data); the first answer to it at the
// initiator's own capture point decides, and where that answer was and was not seen is
// the evidence.
import { formatPacket, icmpLabel } from '../verify/format.js';
import { rstSightings, isRst, isSynAck } from '../verify/sightings.js';
import { CAPTURE_POINTS, TCP, addressOf, hostLabel, pathOf, type CapturePoint, type IcmpError, type Observations, type TcpPacket } from '../vocabulary.js';
import type { Outcome } from './expect-schema.js';
import type { PlannedRow } from './expectations.js';

export interface Judgement {
  /** what happened; 'nothing-sent' when the row's segment never reached the wire */
  observed: Outcome | 'nothing-sent';
  /** which segment the outcome is about: the SYN, or an idle row's data after its silence */
  phase: 'connect' | 'data';
  /** in words: the packet that decided it, where it was seen and where not */
  evidence: string;
  passed: boolean;
  /** a row of family both whose halves disagree: the two outcomes side by side, and which
   * family's ruleset differs (families.ts) */
  familyNote?: string;
}

/** Answers later than the drop wait (plus a margin for the capture's own delay) come too late to count. */
export const GRACE_S = 0.25;

function seq32(a: number, n: number): number {
  return (a + n) >>> 0;
}

function seenList(points: CapturePoint[], all: readonly CapturePoint[]): string {
  const not = all.filter((p) => !points.includes(p));
  if (not.length === 0) return `seen at all ${all.length} points`;
  if (points.length === 0) return 'seen nowhere';
  return `seen at ${points.join(', ')}, not at ${not.join(', ')}`;
}

export function judgeRow(row: PlannedRow, localPort: number, obs: Observations, dropWaitMs: number): Judgement {
  const judged = decide(row, localPort, obs, dropWaitMs);
  const okPhase = row.idleMs === undefined ? judged.phase === 'connect' : judged.phase === 'data';
  return { ...judged, passed: judged.observed === row.expect && okPhase };
}

function decide(row: PlannedRow, localPort: number, obs: Observations, dropWaitMs: number): Omit<Judgement, 'passed'> {
  // the row's own family's addresses: an IPv6 row's connection goes fd00:1::2 → fd00:2::2
  const src = addressOf(row.from, row.family);
  const dst = addressOf(row.to, row.family);
  const path = pathOf({ src, dst });
  const mine: CapturePoint = path[0]!;
  const theirs: CapturePoint = path[path.length - 1]!;
  const out = (p: TcpPacket) => p.src === src && p.dst === dst && p.sport === localPort && p.dport === row.port;
  const back = (p: TcpPacket) => p.src === dst && p.dst === src && p.sport === row.port && p.dport === localPort;
  const at = (pt: CapturePoint) => obs.packets[pt] ?? [];

  const syn = at(mine).find((p) => out(p) && (p.flags & (TCP.SYN | TCP.ACK)) === TCP.SYN);
  if (!syn) return { observed: 'nothing-sent', phase: 'connect', evidence: `no SYN from ${src}:${localPort} to port ${row.port} was captured at ${mine}` };
  const first = answer(syn, 'SYN', 'connect');
  if (row.idleMs === undefined || first.observed !== 'reach') return first;
  // An idle row: after the handshake and the silence, the first data segment decides.
  const data = at(mine).find((p) => out(p) && p.payloadLength > 0);
  if (!data) return { observed: 'nothing-sent', phase: 'data', evidence: `the handshake completed, but no data left ${mine} after the idle time` };
  return answer(data, 'data', 'data');

  function answer(trigger: TcpPacket, what: string, phase: Judgement['phase']): Omit<Judgement, 'passed'> {
    const until = trigger.time + dropWaitMs / 1000 + GRACE_S;
    const reached = path.filter((pt) => at(pt).some((p) => out(p) && p.seq === trigger.seq && p.flags === trigger.flags && p.time >= trigger.time - 0.01));
    const triggerSeen = `${what} ${seenList(reached, path)}`;
    const end = seq32(trigger.seq, trigger.payloadLength + (trigger.flags & TCP.SYN ? 1 : 0));
    const replies = at(mine)
      .map((p, index) => ({ p, index }))
      .filter(({ p }) => back(p) && p.time >= trigger.time && p.time <= until);
    // the answer: a SYN-ACK to a SYN, an ACK of the data, or a RST
    const tcp = replies.find(({ p }) => isRst(p) || (what === 'SYN' ? isSynAck(p) : (p.flags & TCP.ACK) !== 0 && ((p.ack - end) | 0) >= 0));
    const icmp = (obs.icmp?.[mine] ?? []).find((i) => i.dst === src && i.quoted.src === src && i.quoted.dst === dst && i.quoted.sport === localPort && i.quoted.dport === row.port && i.time >= trigger.time && i.time <= until);
    if (icmp && (!tcp || icmp.time < tcp.p.time)) return { observed: 'unreachable', phase, evidence: icmpEvidence(icmp, triggerSeen) };
    if (tcp && !isRst(tcp.p)) {
      return { observed: 'reach', phase, evidence: `${triggerSeen}; ${what === 'SYN' ? 'SYN-ACK' : 'ACK'} from ${hostLabel(tcp.p.src)} at ${mine}: ${formatPacket(tcp.p)}` };
    }
    if (tcp) {
      const s = rstSightings(obs, { capture: [...CAPTURE_POINTS] }).find((x) => x.seen[mine]?.index === tcp.index);
      const seenAt = s ? s.seenAt : [mine];
      const word = row.family === 6 ? 'hlim' : 'ttl';
      const ttls = seenAt.map((pt) => `${pt} ${word} ${s?.seen[pt]?.ttl ?? tcp.p.ttl}`).join(', ');
      const byPeer = seenAt.includes(theirs);
      const reason = s?.reason ? `, kernel reason ${s.reason}` : byPeer ? '' : ', no kernel reason (not made by a TCP socket)';
      const where = `${seenList(seenAt, [...path].reverse())}`;
      return {
        observed: byPeer ? 'reset-by-server' : 'reset-by-firewall',
        phase,
        evidence: `${triggerSeen}; RST ${tcp.p.flags & TCP.ACK ? 'R.' : 'R'} from ${byPeer ? row.to : 'the firewall'} (IP source ${tcp.p.src}) ${where} (${ttls})${reason}: ${formatPacket(tcp.p)}`,
      };
    }
    // Nothing came back in time: where the trigger stopped, and what of an answer was seen on the way back.
    const partial = path
      .filter((pt) => at(pt).some((p) => back(p) && p.time >= trigger.time && p.time <= until))
      .map((pt) => pt);
    const returned = partial.length > 0 ? `; an answer was seen at ${partial.join(', ')} but never reached ${mine}` : '';
    return { observed: 'drop', phase, evidence: `${triggerSeen}${returned}; no reply within ${dropWaitMs / 1000} s` };
  }
}

function icmpEvidence(i: IcmpError, triggerSeen: string): string {
  return `${triggerSeen}; ${icmpLabel(i)} (type ${i.type} code ${i.code}, ${i.ipVersion === 6 ? 'hlim' : 'ttl'} ${i.ttl}), from ${hostLabel(i.src)}`;
}

/** "expected reset-by-firewall, observed drop: SYN seen at ..., no reply within 1 s" */
export function mismatchText(row: PlannedRow, j: Judgement): string {
  const phase = row.idleMs !== undefined && j.phase === 'connect' ? ' before the idle time (the handshake itself)' : '';
  return `${j.familyNote ? `${j.familyNote}; ` : ''}expected ${row.expect}, observed ${j.observed}${phase}: ${j.evidence}`;
}
