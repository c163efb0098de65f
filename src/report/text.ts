// The terminal report of a run: a ladder of every segment across the lab, the RSTs
// highlighted with who sent them and why, what each application saw, the expectations
// held or failed, and the scenario's explanation of the cause.
import { mergeAcrossPoints, mergeIcmpAcrossPoints, type WireEvent } from '../verify/merge.js';
import type { RunResult } from '../run/runner.js';
import { describeRst, type RstSighting } from '../verify/sightings.js';
import { icmpLabel } from '../verify/format.js';
import { TCP, flagString, hostOf, type CapturePoint, type TcpPacket } from '../vocabulary.js';
import { seqNumbers, type SeqAck } from './relative-seq.js';
import { rstLabel } from './rst-words.js';

export interface Style {
  color: boolean;
  /** raw seq/ack instead of relative ones (Wireshark's default is relative) */
  absoluteSeq?: boolean;
  /** an exercise: RSTs are numbered but not attributed (no sender, no kernel reason) */
  mystery?: boolean;
}

const paint = (on: boolean, code: string) => (s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);

/** Where each capture point stands on the ladder, left (client) to right (server). */
const LANE: Record<CapturePoint, number> = { client: 0, 'firewall-a': 22, 'firewall-b': 33, server: 55 };
const WIDTH = LANE.server + 1;

function lanes(e: WireEvent<{ dst: string }>, captured: readonly CapturePoint[]): string {
  const toServer = hostOf(e.first.packet.dst) !== 'client'; // the client's address in either family
  const seen = captured.filter((p) => e.seen.has(p)).map((p) => LANE[p]);
  const from = toServer ? Math.min(...seen) : Math.max(...seen);
  const to = toServer ? Math.max(...seen) : Math.min(...seen);
  const row = Array<string>(WIDTH).fill(' ');
  const [lo, hi] = [Math.min(from, to), Math.max(from, to)];
  for (let i = lo; i <= hi; i++) row[i] = '─';
  for (const p of captured) if (e.seen.has(p)) row[LANE[p]] = '●';
  if (hi > lo) row[to] = toServer ? '▶' : '◀';
  // not seen where it was heading: dropped (or not yet there when capture stopped)
  const last: CapturePoint = toServer ? 'server' : 'client';
  const dropped = captured.includes(last) && !e.seen.has(last);
  if (dropped) row[toServer ? Math.min(hi + 1, WIDTH - 1) : Math.max(lo - 1, 0)] = '✕';
  return row.join('');
}

function segmentLabel(p: TcpPacket, n: SeqAck): string {
  const ack = p.flags & TCP.ACK ? ` ack ${n.ack}` : '';
  const len = p.payloadLength ? ` len ${p.payloadLength}` : '';
  return `${flagString(p.flags).padEnd(3)} ${p.sport}→${p.dport} seq ${n.seq}${ack}${len} win ${n.win}`;
}

/** The sighting a ladder line's RST belongs to: the same copy (capture point and index in
 * that point's capture), not a comparison of fields. */
export function sightingOfEvent(rsts: readonly RstSighting[], e: WireEvent): RstSighting | undefined {
  return rsts.find((r) => r.seen[e.first.point]?.index === e.first.index);
}

export function renderLadder(result: RunResult, style: Style): string[] {
  const captured = result.plan.capture;
  const events = mergeAcrossPoints(result.obs.packets, captured);
  const red = paint(style.color, '1;31');
  const dim = paint(style.color, '2');
  const rsts = result.verdict.rsts;
  const numbers = seqNumbers(events.map((e) => e.first.packet), style.absoluteSeq);
  const seqNote = style.absoluteSeq ? 'seq/ack as on the wire' : 'seq/ack relative, as Wireshark shows them (--absolute-seq: raw)';
  const header = `${'ms'.padStart(9)}  ${'client'.padEnd(LANE['firewall-a'])}${'fw-a'.padEnd(LANE['firewall-b'] - LANE['firewall-a'])}${'fw-b'.padEnd(LANE.server - LANE['firewall-b'])}server  ${seqNote}`;
  const lines = [dim(header)];
  // ICMP errors (a firewall's REJECT with icmp-port-unreachable) stand in the ladder in time order.
  const icmp = mergeIcmpAcrossPoints(result.obs.icmp ?? {}, captured);
  const rows = [...events.map((e, n) => ({ time: e.first.packet.time, e, n })), ...icmp.map((i) => ({ time: i.first.packet.time, i }))].sort((a, b) => a.time - b.time);
  const msOf = (time: number) => ((time * 1000 - result.t0) || 0).toFixed(3).padStart(9);
  // ARP (captured where the lab has an impostor) goes in among them, by time too.
  const arps = arpEvents(result, captured);
  const flushArps = (until: number) => {
    while (arps.length > 0 && arps[0]!.time <= until) {
      const a = arps.shift()!;
      const row = Array<string>(WIDTH).fill(' ');
      for (const pt of a.points) row[LANE[pt]] = '◆';
      lines.push(`${msOf(a.time)}  ${row.join('')}  ${a.text}`);
    }
  };
  for (const row of rows) {
    flushArps(row.time);
    if ('i' in row) {
      lines.push(red(`${msOf(row.time)}  ${lanes(row.i, captured)}  ${icmpLabel(row.i.first.packet)}`));
      continue;
    }
    const e = row.e;
    const p = e.first.packet;
    let line = `${msOf(p.time)}  ${lanes(e, captured)}  ${segmentLabel(p, numbers[row.n]!)}`;
    if (p.flags & TCP.RST) {
      const s = sightingOfEvent(rsts, e);
      line = red(line + (s ? `  ◀ ${rstLabel(s, style.mystery)}` : ''));
    }
    lines.push(line);
  }
  flushArps(Infinity);
  if (events.length === 0) lines.push(dim('         (no TCP segment was captured)'));
  return lines;
}

/** One ARP packet as the ladder shows it, with the capture points that saw it (a broadcast is seen on every port of the switch). */
function arpEvents(result: RunResult, captured: readonly CapturePoint[]): { time: number; points: CapturePoint[]; text: string }[] {
  const out: { time: number; points: CapturePoint[]; text: string; key: string }[] = [];
  for (const point of captured) {
    for (const a of result.obs.arps?.[point] ?? []) {
      const key = `${a.op} ${a.srcMac} ${a.senderIp} ${a.targetIp}`;
      // the same frame at two points: the same fields within a few ms
      const same = out.find((o) => o.key === key && Math.abs(o.time - a.time) < 0.005);
      if (same) {
        same.points.push(point);
        continue;
      }
      const what = a.op === 'request' ? `who-has ${a.targetIp} tell ${a.senderIp}` : `${a.senderIp} is-at ${a.senderMac}`;
      out.push({ time: a.time, points: [point], key, text: `ARP ${what}${a.gratuitous ? ' (gratuitous)' : ''} from ${a.srcMac}` });
    }
  }
  return out.sort((x, y) => x.time - y.time);
}

export function wrap(text: string, width: number, indent: string): string[] {
  const out: string[] = [];
  for (const para of text.trim().split(/\n\s*\n/)) {
    let line = '';
    for (const word of para.split(/\s+/)) {
      if (line && line.length + word.length + 1 > width) {
        out.push(indent + line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    if (line) out.push(indent + line);
    out.push('');
  }
  return out.slice(0, -1);
}

export function renderRun(result: RunResult, style: Style): string {
  const { plan, verdict } = result;
  const bold = paint(style.color, '1');
  const red = paint(style.color, '1;31');
  const green = paint(style.color, '1;32');
  const dim = paint(style.color, '2');
  const variant = (plan.expectOf !== plan.variant ? `${plan.variant}, judged by the expectations of ${plan.expectOf}` : plan.variant) + (plan.family === 6 ? ', over IPv6' : '');
  const out: string[] = [];
  out.push(bold(`${plan.name} (${variant}) — ${plan.summary}`));
  out.push(dim(`lab ${result.labId} on ${result.backend}; capture points: ${plan.capture.join(', ')}`));
  out.push('');
  out.push(...renderLadder(result, style));
  out.push('');

  out.push(bold('What the applications saw'));
  for (const c of Object.values(result.obs.conns)) {
    for (const end of [c.initiator, c.acceptor]) {
      if (!end) continue;
      const events = end.events.map((e) => (e.event === 'error' ? red(e.code ?? 'error') : e.event) + dim(`@${e.t.toFixed(1)}ms`));
      out.push(`  ${c.id} ${end.host.padEnd(6)} :${end.localPort ?? '?'}  ${events.join(', ') || dim('(nothing)')}`);
    }
  }
  out.push('');

  out.push(bold('RSTs'));
  if (verdict.rsts.length === 0) out.push('  none');
  for (const s of verdict.rsts) out.push(red(`  ${describeRst(s)}`));
  out.push('');

  out.push(bold(`Expectations (${plan.file})`));
  for (const r of verdict.results) {
    const mark = r.passed ? green('✔') : red('✘');
    const where = r.line ? `${plan.file}:${r.line}` : plan.file;
    out.push(`  ${mark} ${r.summary}  ${dim(where)}`);
    if (!r.passed && r.detail) out.push(...r.detail.split('\n').map((l) => `      ${l}`));
  }
  out.push('');

  out.push(bold('Why'));
  out.push(...wrap(plan.explanation, 88, '  '));
  if (plan.rfc.length > 0) out.push(dim(`  See ${plan.rfc.join('; ')}.`));
  out.push('');

  const t = result.timings;
  out.push(dim(`time ${fmt(t.total)}: lab up ${fmt(t.labUp)}, capture ready ${fmt(t.captureReady)}, steps ${fmt(t.steps)}, verify ${fmt(t.verify)}, lab down ${fmt(t.labDown)}`));
  out.push(`pcaps and report: ${result.dir}`);
  const ran = `${plan.name} ${plan.variant}${plan.family === 6 ? ' IPv6' : ''}`;
  out.push(verdict.passed ? green('PASS') + ` ${ran}` : red('FAIL') + ` ${ran}`);
  return out.join('\n');
}

const fmt = (ms: number) => `${Math.round(ms)} ms`;

/** An exercise: the ladder with numbered, unattributed RSTs and where the pcaps are; no
 * scenario name, explanation, expectations or verdict (rstlab reveal shows those). */
export function renderMystery(result: RunResult, style: Style): string {
  const bold = paint(style.color, '1');
  const dim = paint(style.color, '2');
  const out = [bold('A mystery run: which cause made the RST?'), dim(`capture points: ${result.plan.capture.join(', ')}`), ''];
  out.push(...renderLadder(result, { ...style, mystery: true }), '');
  out.push(`pcaps: ${result.dir}`);
  out.push(dim(`who sent each RST, and why? the answer: rstlab reveal ${result.dir}`));
  return out.join('\n');
}
