// `rstlab diagnose FILE...`: every RST of a capture taken anywhere, with the cause that fits
// it, the evidence a person can check in Wireshark, who sent it, and what to check next.
import { readFile, stat } from 'node:fs/promises';
import { readCapture } from '../capture/contents.js';
import { InputError } from '../errors.js';
import type { LoadedScenario } from '../scenario/load.js';
import { formatPacket } from '../verify/format.js';
import { TCP, endpointText, flagString, type TcpPacket } from '../vocabulary.js';
import { rstFacts, type RstFacts, type SentBy } from './facts.js';
import { NEXT_CHECKS, candidatesFor, signaturesOf, type Candidate, type Signature } from './match.js';

export interface RstDiagnosis {
  time: number;
  sender: string;
  receiver: string;
  flags: string;
  seq: number;
  ack: number | null;
  relation: string;
  ttl: number;
  ttlComparison: string;
  ipId: number;
  window: number;
  mac: { rst: string | null; senderEarlier: string[]; changed: boolean | null };
  before: RstFacts['state'] & { senderRole: RstFacts['senderRole'] };
  cause: string;
  candidates: Candidate[];
  /** where the wire cannot tell the first candidates apart */
  cannotTell: string | null;
  evidence: string[];
  sentBy: SentBy;
  sentByWhy: string;
  nextChecks: string;
  /** the RST in context: a few packets of its flow before it, as tcpdump prints them */
  context: string[];
}

export interface FileDiagnosis {
  file: string;
  packets: number;
  truncated: boolean;
  warnings: string[];
  rsts: RstDiagnosis[];
}

/** The largest capture diagnose reads (it is read whole). */
const MAX_BYTES = 512 * 1024 * 1024;

/** Reads and diagnoses each file; a file that is not a capture is an InputError (exit 2), nothing else is read. */
export async function diagnoseFiles(files: string[], scenarios: LoadedScenario[]): Promise<FileDiagnosis[]> {
  const buffers: Buffer[] = [];
  for (const file of files) {
    const st = await stat(file).catch(() => undefined);
    if (!st) throw new InputError('no such file', file);
    if (!st.isFile()) throw new InputError('not a regular file', file);
    if (st.size > MAX_BYTES) throw new InputError(`too big (${st.size} bytes; at most ${MAX_BYTES})`, file);
    buffers.push(await readFile(file));
  }
  const signatures = signaturesOf(scenarios);
  return files.map((file, i) => {
    let contents;
    try {
      contents = readCapture(buffers[i] as Buffer);
    } catch (e) {
      throw new InputError(`${(e as Error).message}; diagnose reads pcap and pcapng files`, file);
    }
    return diagnoseCapture(file, contents.packets, contents.arps, contents.truncated, signatures);
  });
}

export function diagnoseCapture(file: string, packets: TcpPacket[], arps: Parameters<typeof rstFacts>[1], truncated: boolean, signatures: Signature[]): FileDiagnosis {
  const warnings: string[] = [];
  if (truncated) warnings.push(`the capture is cut short: read up to its last complete packet (${packets.length} TCP segments)`);
  return { file, packets: packets.length, truncated, warnings, rsts: rstFacts(packets, arps, file).map((f) => diagnoseRst(f, packets, signatures)) };
}

function diagnoseRst(f: RstFacts, packets: TcpPacket[], signatures: Signature[]): RstDiagnosis {
  const { candidates, checks } = candidatesFor(f, signatures);
  const first = candidates[0];
  const second = candidates[1];
  const cause = first?.cause ?? 'unknown';
  let cannotTell: string | null = null;
  // Name both where they are close, or where they are a pair the wire is known to confuse.
  const known = first && second ? pairNote(first.cause, second.cause) : undefined;
  if (first && second && (first.confidence - second.confidence < 0.2 || (known && second.confidence >= 0.25))) {
    cannotTell = `the wire cannot tell ${first.cause} from ${second.cause} for certain: ${known ?? 'compare a capture from the other side of the path'}`;
  }
  const r = f.rst;
  const evidence = [
    `RST ${flagString(r.flags)} ${r.src}.${r.sport} > ${r.dst}.${r.dport} at ${formatPacket(r).split(' ')[0]} (packet ${f.index + 1} of the file's TCP segments): seq ${r.seq}${r.flags & TCP.ACK ? `, ack ${r.ack}` : ''}, ${f.relation}`,
    f.answered ? `it answers ${describe(f.answered)}` : 'no packet of the flow came to its sender before it in this capture',
    `who sent it: ${f.sentByWhy}`,
    `IP id ${r.ipId}, window ${r.window}, ${r.options.timestamp ? 'with timestamps (a live socket sends those)' : 'no TCP options'}${r.ipId === 0 && r.window === 0 ? ' (IP id 0, window 0, no options: a RST for no socket, or a firewall REJECT)' : ''}`,
    ...(f.state.idleBeforeAnswered !== undefined ? [`the flow was idle ${f.state.idleBeforeAnswered.toFixed(3)} s before the segment it answers`] : []),
    ...(first ? first.because : ['no cause the lab knows has this shape; the shapes checked: ' + [...checks.entries()].slice(0, 3).map(([c, cs]) => `${c} (${cs.filter((x) => !x.ok).map((x) => `${x.field}: expected ${x.expected}, seen ${x.seen}`).join('; ')})`).join(', ')]),
  ];
  const context = f.before.slice(-5).map((q) => formatPacket(q)).concat([formatPacket(r)]);
  const after = packets.slice(f.index + 1).filter((q) => q.sport === r.sport && q.dport === r.dport || q.sport === r.dport && q.dport === r.sport).slice(0, 1);
  context.push(...after.map((q) => formatPacket(q)));
  return {
    time: r.time,
    sender: endpointText(r.src, r.sport),
    receiver: endpointText(r.dst, r.dport),
    flags: flagString(r.flags),
    seq: r.seq,
    ack: r.flags & TCP.ACK ? r.ack : null,
    relation: f.relation,
    ttl: r.ttl,
    ttlComparison: f.ttl.judgement === 'no-other-packets' ? `no other packet from ${r.src} (hops ${f.ttl.hops}, the peer's ${f.ttl.receiverHops ?? '?'})` : `${f.ttl.judgement} (the sender's other packets: TTL ${[...new Set(f.ttl.senderTtls)].join('/')})`,
    ipId: r.ipId,
    window: r.window,
    mac: { rst: f.mac.rst ?? null, senderEarlier: f.mac.earlier, changed: f.mac.changed ?? null },
    before: { ...f.state, senderRole: f.senderRole },
    cause,
    candidates,
    cannotTell,
    evidence,
    sentBy: f.sentBy,
    sentByWhy: f.sentByWhy,
    nextChecks: NEXT_CHECKS[cause] ?? 'Compare a capture taken on the other side of the path (who else sent it?), and check both ends\' logs at the RST\'s time.',
    context,
  };
}

function describe(p: TcpPacket): string {
  const kind = p.flags & TCP.SYN ? (p.flags & TCP.ACK ? 'a SYN-ACK' : 'a SYN') : p.flags & TCP.FIN ? 'a FIN' : p.payloadLength > 0 ? `data (${p.payloadLength} bytes)` : 'a bare ACK';
  return `${kind} from ${p.src}.${p.sport}: seq ${p.seq}${p.flags & TCP.ACK ? `, ack ${p.ack}` : ''}`;
}

/** Why two causes look alike on the wire, and what would tell them apart. */
function pairNote(a: string, b: string): string | undefined {
  const pair = new Set([a, b]);
  if (pair.has('app-abort') && pair.has('unread-data-close')) return 'an abort with linger 0 and a close with unread data send the same RST; the application\'s code or logs (or the kernel\'s TCPAbortOnData/TCPAbortOnClose counters) tell them apart';
  if (pair.has('closed-port') && pair.has('firewall-reject')) return 'a firewall that forges well looks like a closed port; a capture on the server\'s side (a firewall RST never gets there) or the TTL of other packets from the server tells them apart';
  if (pair.has('half-open-restart') && pair.has('duplicate-address')) return 'at the client a duplicate address looks like a half-open reset; capture on the server\'s network and compare source MACs';
  if (pair.has('firewall-invalid-state') && pair.has('idle-timeout')) return 'both are a state table that does not know the flow; whether the entry expired (idle time against the device\'s timeout) or never existed is in the firewall\'s logs';
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Text

export function renderDiagnosis(results: FileDiagnosis[]): string {
  const out: string[] = [];
  for (const r of results) {
    out.push(`${r.file}: ${r.packets} TCP segments, ${r.rsts.length === 0 ? 'no RST' : `${r.rsts.length} RST${r.rsts.length > 1 ? 's' : ''}`}`);
    for (const w of r.warnings) out.push(`  warning: ${w}`);
    if (r.rsts.length === 0) out.push('  No RST in this capture: no connection was reset here.');
    r.rsts.forEach((d, i) => {
      out.push('', `  RST ${i + 1}: ${d.sender} > ${d.receiver} [${d.flags}] seq ${d.seq}${d.ack !== null ? ` ack ${d.ack}` : ''}`);
      for (const line of d.context) out.push(`    ${line}${line.includes('[R') ? '   ◀' : ''}`);
      out.push(`  cause: ${d.cause}${d.candidates.length > 0 ? `   (${d.candidates.map((c) => `${c.cause} ${c.confidence.toFixed(2)}`).join(', ')})` : ''}`);
      if (d.cannotTell) out.push(`  note: ${d.cannotTell}`);
      out.push(`  sent by: ${d.sentBy} — ${d.sentByWhy}`);
      out.push('  evidence:');
      for (const e of d.evidence) out.push(`    - ${e}`);
      out.push(`  check next: ${d.nextChecks}`);
    });
    out.push('');
  }
  return out.join('\n');
}
