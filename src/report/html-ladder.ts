// The ladder of report.html as inline SVG: one lane per host (the firewall a band with its
// two capture points, eth0 = firewall-a and eth1 = firewall-b), one arrow per packet on the
// wire in time order, drawn between the capture points that saw it, so a packet dropped at
// the firewall ends there (marked ✕). Labels follow Wireshark's flow graph
// ("7 → 42634 [RST, ACK] Seq=1 Ack=1 Win=0 Len=0"); RSTs are red, thicker, and say who sent
// them and why. Each arrow carries its fields in a <title> (hover) and in data-* (click).
import { mergeAcrossPoints, mergeIcmpAcrossPoints, type WireEvent } from '../verify/merge.js';
import type { RunResult } from '../run/runner.js';
import { formatTime, icmpLabel } from '../verify/format.js';
import { CAPTURE_INTERFACE, CAPTURE_POINTS, PATH_TO_B, TCP, endpointText, pathOf, topologyOf, type CapturePoint, type IcmpError, type TcpPacket } from '../vocabulary.js';
import { seqNumbers, type SeqAck } from './relative-seq.js';
import { reasonText, rstLabel } from './rst-words.js';
import { sightingOfEvent } from './text.js';

export const esc = (s: string | number) =>
  String(s).replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c]!);

/** x of each capture point in the SVG's coordinates (viewBox width WIDTH). */
const X: Record<CapturePoint, number> = { client: 170, 'firewall-a': 490, 'firewall-b': 590, server: 910 };
const WIDTH = 1060;
const HEAD = 128;
const ROW = 50;
const RST_ROW = 76;
const GAP_ROW = 34;
/** A pause longer than this between two packets gets a row of its own ("… 5.00 s …"). */
const GAP_S = 0.3;

/** Flag names in the order Wireshark lists them: "[SYN, ACK]", "[RST, ACK]". */
export function flagWords(flags: number): string {
  const names: [number, string][] = [
    [TCP.FIN, 'FIN'], [TCP.SYN, 'SYN'], [TCP.RST, 'RST'], [TCP.PSH, 'PSH'], [TCP.ACK, 'ACK'], [TCP.URG, 'URG'], [TCP.ECE, 'ECE'], [TCP.CWR, 'CWR'],
  ];
  const set = names.filter(([bit]) => flags & bit).map(([, n]) => n);
  return `[${set.join(', ') || '<none>'}]`;
}

/** The flow graph's comment of a packet: "7 → 42634 [RST, ACK] Seq=1 Ack=1 Win=0 Len=0". */
export function packetLabel(p: TcpPacket, n: SeqAck): string {
  const ack = p.flags & TCP.ACK ? ` Ack=${n.ack}` : '';
  return `${p.sport} → ${p.dport} ${flagWords(p.flags)} Seq=${n.seq}${ack} Win=${n.win} Len=${p.payloadLength}`;
}

export interface LadderRow {
  event: WireEvent;
  numbers: SeqAck;
  /** ms since the run's first step */
  ms: number;
}

/** The packets of a run as the ladder draws them: merged across points, in time order. */
export function ladderRows(r: RunResult, absoluteSeq: boolean): LadderRow[] {
  const events = mergeAcrossPoints(r.obs.packets, r.plan.capture);
  const numbers = seqNumbers(events.map((e) => e.first.packet), absoluteSeq);
  return events.map((event, i) => ({ event, numbers: numbers[i]!, ms: event.first.packet.time * 1000 - r.t0 }));
}

/** Every field of a packet and where it was seen: the arrow's hover text and click details. */
export function packetDetails(r: RunResult, row: LadderRow, absoluteSeq: boolean): [string, string][] {
  const p = row.event.first.packet;
  const seenAt = pathOf(p).filter((pt) => row.event.seen.has(pt));
  const rows: [string, string][] = [
    ['time', `${formatTime(p.time)} UTC (+${row.ms.toFixed(3)} ms)`],
    ['from', `${p.src} port ${p.sport}`],
    ['to', `${p.dst} port ${p.dport}`],
    ['flags', flagWords(p.flags)],
    [absoluteSeq ? 'seq' : 'seq (relative)', String(row.numbers.seq)],
    ['seq (raw)', String(p.seq)],
  ];
  if (p.flags & TCP.ACK) rows.push([absoluteSeq ? 'ack' : 'ack (relative)', String(row.numbers.ack)], ['ack (raw)', String(p.ack)]);
  rows.push(
    ['length', `${p.payloadLength} bytes`],
    ['window', row.numbers.win === p.window ? String(p.window) : `${row.numbers.win} (${p.window} scaled)`],
    ['IP id', String(p.ipId)],
    ['options', optionsText(p) || 'none'],
    ['seen at', seenAt.map((pt) => `${pt} (ttl ${row.event.seen.get(pt)!.packet.ttl})`).join(', ')],
  );
  const notSeen = r.plan.capture.filter((pt) => !row.event.seen.has(pt));
  if (notSeen.length > 0) rows.push(['not seen at', notSeen.join(', ')]);
  return rows;
}

function optionsText(p: TcpPacket): string {
  const o = p.options;
  return [
    o.mss !== undefined ? `mss ${o.mss}` : '',
    o.wscale !== undefined ? `wscale ${o.wscale}` : '',
    o.sackOk ? 'sackOK' : '',
    o.timestamp ? `TS val ${o.timestamp.value} ecr ${o.timestamp.echo}` : '',
  ].filter(Boolean).join(', ');
}

function lanes(r: RunResult, height: number): string {
  const captured = new Set(r.plan.capture);
  // the run's own family's addresses (a run over IPv6 shows fd00:...)
  const topology = topologyOf(r.plan.family ?? 4);
  const fw = topology.firewall.addresses;
  const out: string[] = [];
  // the firewall: a band between its two interfaces
  out.push(`<rect class="fw-band" x="${X['firewall-a'] - 30}" y="12" width="${X['firewall-b'] - X['firewall-a'] + 60}" height="${height - 20}" rx="10"/>`);
  const host = (x: number, name: string, address: string) =>
    `<text class="host" x="${x}" y="38" text-anchor="middle">${esc(name)}</text><text class="addr" x="${x}" y="62" text-anchor="middle">${esc(address)}</text>`;
  out.push(host(X.client, 'client', topology.client.address));
  out.push(host((X['firewall-a'] + X['firewall-b']) / 2, 'firewall', `${fw.eth0} | ${fw.eth1}`));
  out.push(host(X.server, 'server', topology.server.address));
  for (const pt of CAPTURE_POINTS) {
    const { iface } = CAPTURE_INTERFACE[pt];
    // two short lines: the firewall's two points stand close together
    out.push(`<text class="point" x="${X[pt]}" y="${HEAD - 38}" text-anchor="middle">${esc(iface)}</text>`);
    out.push(`<text class="point-name" x="${X[pt]}" y="${HEAD - 20}" text-anchor="middle">${esc(captured.has(pt) ? pt : `${pt} (not captured)`)}</text>`);
    out.push(`<line class="lane${captured.has(pt) ? '' : ' uncaptured'}" x1="${X[pt]}" y1="${HEAD - 10}" x2="${X[pt]}" y2="${height - 10}"/>`);
  }
  return out.join('\n');
}

interface ArrowInput {
  r: RunResult;
  row: LadderRow;
  index: number;
  y: number;
  absoluteSeq: boolean;
  mystery: boolean;
}

function arrow({ r, row, index, y, absoluteSeq, mystery }: ArrowInput): string {
  const e = row.event;
  const p = e.first.packet;
  const path = pathOf(p);
  const seen = path.filter((pt) => e.seen.has(pt));
  const fromPt = seen[0]!;
  const toPt = seen[seen.length - 1]!;
  const toRight = path === PATH_TO_B;
  const dir = toRight ? 1 : -1;
  const x1 = X[fromPt];
  // a packet seen at one point only is a short stub in its direction
  const x2 = fromPt === toPt ? X[fromPt] + dir * 36 : X[toPt];
  const rst = (p.flags & TCP.RST) !== 0;
  const sighting = rst ? sightingOfEvent(r.verdict.rsts, e) : undefined;
  const details = packetDetails(r, row, absoluteSeq);
  if (sighting && !mystery) details.unshift(['RST', `#${sighting.id} ${rstLabel(sighting).replace(/^RST #\d+ /, '')}: ${reasonText(sighting)}`]);
  else if (sighting) details.unshift(['RST', `#${sighting.id}`]);
  const title = details.map(([k, v]) => `${k}: ${v}`).join('\n');
  const last = path[path.length - 1]!;
  const dropped = r.plan.capture.includes(last) && !e.seen.has(last);

  const cls = ['arrow', rst ? 'rst' : '', dropped ? 'dropped' : ''].filter(Boolean).join(' ');
  const data = [
    `data-index="${index}"`,
    `data-flags="${esc(flagWords(p.flags))}"`,
    `data-seen="${esc(seen.join(' '))}"`,
    sighting ? `data-rst="${sighting.id}"` : '',
    sighting && !mystery ? `data-sender="${esc(sighting.from ?? 'unknown')}"` : '',
    `data-details="${esc(JSON.stringify(details))}"`,
  ].filter(Boolean).join(' ');
  const mid = (x1 + x2) / 2;
  const out = [`<g class="${cls}" ${data} tabindex="0" role="button" aria-label="${esc(packetLabel(p, row.numbers))}">`, `<title>${esc(title)}</title>`];
  // a wide transparent line: an easy target for the mouse and a finger
  out.push(`<line class="hit" x1="${x1}" y1="${y}" x2="${x2}" y2="${y}"/>`);
  out.push(`<line class="shaft" x1="${x1}" y1="${y}" x2="${x2 - dir * 2}" y2="${y}" marker-end="url(#${rst ? 'head-rst' : 'head'})"/>`);
  for (const pt of seen) out.push(`<circle class="dot" cx="${X[pt]}" cy="${y}" r="${rst ? 6 : 5}"/>`);
  if (dropped) {
    const xd = x2 + dir * 26;
    out.push(`<text class="drop" x="${xd}" y="${y + 7}" text-anchor="middle">✕</text>`);
    out.push(`<text class="drop-label" x="${xd + dir * 16}" y="${y + 5}" text-anchor="${toRight ? 'start' : 'end'}">not seen at ${esc(last)}</text>`);
  }
  out.push(`<text class="time" x="112" y="${y + 5}" text-anchor="end">${esc(row.ms.toFixed(1))} ms</text>`);
  const labelX = Math.min(Math.max(mid, 330), WIDTH - 330);
  out.push(`<text class="label" x="${labelX}" y="${y - 12}" text-anchor="middle">${esc(packetLabel(p, row.numbers))}</text>`);
  if (sighting) {
    const text = mystery ? `RST #${sighting.id}` : `${rstLabel(sighting)}`;
    out.push(`<text class="rst-label" x="${labelX}" y="${y + 26}" text-anchor="middle">${esc(text)}</text>`);
  }
  out.push('</g>');
  return out.join('\n');
}

/** An ICMP error (a firewall's REJECT with icmp-port-unreachable), drawn like a packet in its own colour. */
function icmpArrow(r: RunResult, e: WireEvent<IcmpError>, y: number): string {
  const p = e.first.packet;
  const path = pathOf(p);
  const seen = path.filter((pt) => e.seen.has(pt));
  const dir = path === PATH_TO_B ? 1 : -1;
  const x1 = X[seen[0]!];
  const x2 = seen.length > 1 ? X[seen[seen.length - 1]!] : x1 + dir * 36;
  const ms = p.time * 1000 - r.t0;
  const details: [string, string][] = [
    ['time', `${formatTime(p.time)} UTC (+${ms.toFixed(3)} ms)`],
    ['ICMP', `type ${p.type} code ${p.code} from ${p.src} to ${p.dst}`],
    ['quoting', `${endpointText(p.quoted.src, p.quoted.sport)} → ${endpointText(p.quoted.dst, p.quoted.dport)} seq ${p.quoted.seq}`],
    ['seen at', seen.map((pt) => `${pt} (ttl ${e.seen.get(pt)!.packet.ttl})`).join(', ')],
  ];
  // the quoted seq is a raw number: the details have it
  const label = `${icmpLabel(p).replace(/, quoting .*$/, '')} (for ${p.quoted.sport} → ${p.quoted.dport})`;
  const labelX = Math.min(Math.max((x1 + x2) / 2, 330), WIDTH - 330);
  return [
    `<g class="arrow icmp" data-seen="${esc(seen.join(' '))}" data-details="${esc(JSON.stringify(details))}" data-index="-1" tabindex="0" role="button" aria-label="${esc(label)}">`,
    `<title>${esc(details.map(([k, v]) => `${k}: ${v}`).join('\n'))}</title>`,
    `<line class="hit" x1="${x1}" y1="${y}" x2="${x2}" y2="${y}"/>`,
    `<line class="shaft" x1="${x1}" y1="${y}" x2="${x2 - dir * 2}" y2="${y}" marker-end="url(#head-icmp)"/>`,
    ...seen.map((pt) => `<circle class="dot" cx="${X[pt]}" cy="${y}" r="5"/>`),
    `<text class="time" x="112" y="${y + 5}" text-anchor="end">${esc(ms.toFixed(1))} ms</text>`,
    `<text class="label" x="${labelX}" y="${y - 10}" text-anchor="middle">${esc(label)}</text>`,
    '</g>',
  ].join('\n');
}

/** The whole ladder as one <svg>, sized by its rows; `mystery` leaves RSTs unattributed. */
export function ladderSvg(r: RunResult, opts: { absoluteSeq: boolean; mystery: boolean }): { svg: string; rows: LadderRow[] } {
  const rows = ladderRows(r, opts.absoluteSeq);
  // ICMP errors stand in the ladder in time order, among the segments
  const icmp = mergeIcmpAcrossPoints(r.obs.icmp ?? {}, r.plan.capture);
  const drawn = [
    ...rows.map((row, i) => ({ time: row.event.first.packet.time, row, i })),
    ...icmp.map((e) => ({ time: e.first.packet.time, e })),
  ].sort((a, b) => a.time - b.time);
  const body: string[] = [];
  let y = HEAD + 18;
  drawn.forEach((d, n) => {
    const prev = drawn[n - 1];
    if (prev && d.time - prev.time > GAP_S) {
      body.push(`<text class="gap" x="${(X.client + X.server) / 2}" y="${y + 4}" text-anchor="middle">… ${(d.time - prev.time).toFixed(2)} s with no packet …</text>`);
      y += GAP_ROW;
    }
    if ('e' in d) {
      body.push(icmpArrow(r, d.e, y + 14));
      y += ROW;
      return;
    }
    const rst = (d.row.event.first.packet.flags & TCP.RST) !== 0;
    y += rst ? 8 : 0;
    body.push(arrow({ r, row: d.row, index: d.i, y: y + 14, absoluteSeq: opts.absoluteSeq, mystery: opts.mystery }));
    y += rst ? RST_ROW : ROW;
  });
  if (rows.length === 0) {
    body.push(`<text class="gap" x="${(X.client + X.server) / 2}" y="${y + 10}" text-anchor="middle">no TCP segment was captured</text>`);
    y += ROW;
  }
  const height = y + 10;
  const defs = `<defs>
<marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="head"/></marker>
<marker id="head-icmp" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="head-icmp"/></marker>
<marker id="head-rst" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="3.6" markerHeight="3.6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="head-rst"/></marker>
</defs>`;
  const svg = `<svg class="ladder" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}" role="img" aria-label="ladder diagram: ${rows.length} packets" xmlns="http://www.w3.org/2000/svg">
${defs}
${lanes(r, height)}
${body.join('\n')}
</svg>`;
  return { svg, rows };
}
