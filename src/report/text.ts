// The terminal report of a run: a ladder of every segment across the lab, the RSTs
// highlighted with who sent them and why, what each application saw, the expectations
// held or failed, and the scenario's explanation of the cause.
import { mergeAcrossPoints, mergeIcmpAcrossPoints, type WireEvent } from '../verify/merge.js';
import type { RunResult } from '../run/runner.js';
import { describeRst } from '../verify/sightings.js';
import { icmpLabel } from '../verify/format.js';
import { TCP, TOPOLOGY, flagString, type CapturePoint, type TcpPacket } from '../vocabulary.js';

export interface Style {
  color: boolean;
}

const paint = (on: boolean, code: string) => (s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);

/** Where each capture point stands on the ladder, left (client) to right (server). */
const LANE: Record<CapturePoint, number> = { client: 0, 'firewall-a': 22, 'firewall-b': 33, server: 55 };
const WIDTH = LANE.server + 1;

function lanes(e: WireEvent<{ dst: string }>, captured: readonly CapturePoint[]): string {
  const toServer = e.first.packet.dst !== TOPOLOGY.client.address;
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

function segmentLabel(p: TcpPacket): string {
  const ack = p.flags & TCP.ACK ? ` ack ${p.ack}` : '';
  const len = p.payloadLength ? ` len ${p.payloadLength}` : '';
  return `${flagString(p.flags).padEnd(3)} ${p.sport}→${p.dport} seq ${p.seq}${ack}${len} win ${p.window}`;
}

export function renderLadder(result: RunResult, style: Style): string[] {
  const captured = result.plan.capture;
  const events = mergeAcrossPoints(result.obs.packets, captured);
  const red = paint(style.color, '1;31');
  const dim = paint(style.color, '2');
  const rsts = result.verdict.rsts;
  const header = `${'ms'.padStart(9)}  ${'client'.padEnd(LANE['firewall-a'])}${'fw-a'.padEnd(LANE['firewall-b'] - LANE['firewall-a'])}${'fw-b'.padEnd(LANE.server - LANE['firewall-b'])}server`;
  const lines = [dim(header)];
  // ICMP errors (a firewall's REJECT with icmp-port-unreachable) stand in the ladder in time order.
  const icmp = mergeIcmpAcrossPoints(result.obs.icmp ?? {}, captured);
  const rows = [...events.map((e) => ({ time: e.first.packet.time, e })), ...icmp.map((i) => ({ time: i.first.packet.time, i }))].sort((a, b) => a.time - b.time);
  const msOf = (time: number) => ((time * 1000 - result.t0) || 0).toFixed(3).padStart(9);
  for (const row of rows) {
    if ('i' in row) {
      lines.push(red(`${msOf(row.time)}  ${lanes(row.i, captured)}  ${icmpLabel(row.i.first.packet)}`));
      continue;
    }
    const e = row.e;
    const p = e.first.packet;
    let line = `${msOf(p.time)}  ${lanes(e, captured)}  ${segmentLabel(p)}`;
    if (p.flags & TCP.RST) {
      // the same copy of the same packet: capture point and index in that point's capture
      const s = rsts.find((r) => r.seen[e.first.point]?.index === e.first.index);
      const who = s ? `  ◀ RST #${s.id} sent by ${s.from ?? '?'}${s.ipSource !== s.from ? ` as ${s.ipSource}` : ''}${s.reason ? ` (${s.reason})` : ''}` : '';
      line = red(line + who);
    }
    lines.push(line);
  }
  if (events.length === 0) lines.push(dim('         (no TCP segment was captured)'));
  return lines;
}

function wrap(text: string, width: number, indent: string): string[] {
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
  const variant = plan.expectOf !== plan.variant ? `${plan.variant}, judged by the expectations of ${plan.expectOf}` : plan.variant;
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
  out.push(verdict.passed ? green('PASS') + ` ${plan.name} ${plan.variant}` : red('FAIL') + ` ${plan.name} ${plan.variant}`);
  return out.join('\n');
}

const fmt = (ms: number) => `${Math.round(ms)} ms`;
