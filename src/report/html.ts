// report.html: one self-contained page a teacher can put on a projector, hand out on
// paper, or send with the pcaps: the scenario and why it resets (with its RFC sections),
// the ladder (html-ladder.ts), every RST with its sender and the kernel's reason, the
// expectations and their verdicts, what each application saw, every packet's fields, and
// links to the captures. A mystery run's page shows the ladder and the packets only.
import { writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import type { RunResult } from '../run/runner.js';
import { describeRst } from '../verify/sightings.js';
import { TCP, endpointText, pathOf } from '../vocabulary.js';
import { ALL_PCAPNG } from './all-pcapng.js';
import { esc, flagWords, ladderSvg, type LadderRow } from './html-ladder.js';
import { CSS, SCRIPT } from './html-style.js';
import { reasonText, rstLabel } from './rst-words.js';
import { sightingOfEvent } from './text.js';

export const REPORT_HTML = 'report.html';

export interface HtmlOptions {
  absoluteSeq?: boolean;
  mystery?: boolean;
}

/** Plain text with `code` spans and blank-line paragraphs, as the scenario files write it. */
export function prose(text: string): string {
  return text
    .trim()
    .split(/\n\s*\n/)
    .map((para) => `<p>${esc(para.replace(/\s+/g, ' ')).replace(/`([^`]+)`/g, '<code>$1</code>')}</p>`)
    .join('\n');
}

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
${body}
<script>${SCRIPT}</script>
</body>
</html>
`;
}

function packetTable(r: RunResult, rows: LadderRow[], opts: Required<HtmlOptions>): string {
  const seqHead = opts.absoluteSeq ? 'seq / ack' : 'seq / ack (relative)';
  const body = rows.map((row, i) => {
    const p = row.event.first.packet;
    const rst = (p.flags & TCP.RST) !== 0;
    const s = rst ? sightingOfEvent(r.verdict.rsts, row.event) : undefined;
    const seen = pathOf(p).filter((pt) => row.event.seen.has(pt)).map((pt) => `${pt} (ttl ${row.event.seen.get(pt)!.packet.ttl})`).join(', ');
    const ack = p.flags & TCP.ACK ? ` / ${row.numbers.ack}` : '';
    const note = s ? rstLabel(s, opts.mystery) : '';
    return `<tr id="pkt-${i}"${rst ? ' class="rst"' : ''}><td>${i + 1}</td><td class="mono">${row.ms.toFixed(3)}</td><td class="mono">${esc(`${endpointText(p.src, p.sport)} → ${endpointText(p.dst, p.dport)}`)}</td><td>${esc(flagWords(p.flags))}</td><td class="mono">${row.numbers.seq}${ack}</td><td>${p.payloadLength}</td><td>${row.numbers.win}</td><td>${esc(seen)}</td><td>${esc(note)}</td></tr>`;
  });
  return `<table class="packets"><thead><tr><th>#</th><th>ms</th><th>from → to</th><th>flags</th><th>${seqHead}</th><th>len</th><th>win</th><th>seen at (TTL)</th><th></th></tr></thead>
<tbody>${body.join('\n')}</tbody></table>`;
}

/** The scenario's teaching notes (rstlab explain): Wireshark filters, look-alikes, practice. */
function teachSection(r: RunResult): string {
  const t = r.plan.teach;
  if (!t) return '';
  const filters = t.wireshark.filters.map((f) => `<tr><td class="mono">${esc(f.filter)}</td><td>${esc(f.shows)}</td></tr>`).join('');
  const resembles = t.resembles.map((x) => `<li><strong>${esc(x.scenario)}</strong>: ${esc(x.tell)}</li>`).join('');
  return `<h2>In Wireshark</h2>
<table><thead><tr><th>display filter</th><th>shows</th></tr></thead><tbody>${filters}</tbody></table>
${prose(t.wireshark.looksLike)}
${resembles ? `<h2>Telling it from the causes it resembles</h2><ul>${resembles}</ul>` : ''}
<h2>In practice</h2>
<p><strong>Finding it.</strong> ${prose(t.inPractice.find).replace(/^<p>|<\/p>$/g, '')}</p>
<p><strong>Fixing it.</strong> ${prose(t.inPractice.fix).replace(/^<p>|<\/p>$/g, '')}</p>`;
}

function files(r: RunResult): string {
  const links = [
    [ALL_PCAPNG, 'all capture points in one file, RSTs commented (Wireshark)'],
    ...r.plan.capture.map((p) => [`${p}.pcap`, `capture point ${p}`]),
  ];
  return `<ul class="files">${links.map(([f, what]) => `<li><a href="${esc(f!)}">${esc(f!)}</a> — ${esc(what!)}</li>`).join('')}</ul>`;
}

function ladderSection(r: RunResult, opts: Required<HtmlOptions>): { html: string; rows: LadderRow[] } {
  const { svg, rows } = ladderSvg(r, opts);
  const seqNote = opts.absoluteSeq ? 'seq/ack as on the wire' : 'seq/ack relative to each side’s first sequence number, as Wireshark shows them';
  const html = `<h2>The ladder</h2>
<p class="hint">One arrow per packet, in time order (${esc(seqNote)}). A dot is a capture point that saw it; an arrow ends where the packet was last seen. Hover over an arrow or click it for every field.</p>
<figure>${svg}</figure>
<div id="detail" hidden></div>`;
  return { html, rows };
}

export function reportHtml(r: RunResult, options: HtmlOptions = {}): string {
  const opts: Required<HtmlOptions> = { absoluteSeq: options.absoluteSeq ?? false, mystery: options.mystery ?? false };
  const { plan, verdict } = r;
  const ladder = ladderSection(r, opts);
  const packets = `<h2>Every packet</h2>\n${packetTable(r, ladder.rows, opts)}`;
  const captures = `<h2>Captures</h2>\n${files(r)}`;
  if (opts.mystery) {
    const body = `<h1>Mystery run: which cause made the RST?</h1>
<p class="meta">${ladder.rows.length} packets, ${verdict.rsts.length} RST(s) · captured at ${esc(plan.capture.join(', '))}</p>
<p>Who sent each RST, and why? Look at where each arrow starts, the TTLs, the flags and the seq/ack numbers, and what came just before. <code>rstlab reveal</code> with this page's folder tells.</p>
${ladder.html}
${packets}
${captures}`;
    return page('rstlab mystery run', body);
  }

  const variant = (plan.expectOf !== plan.variant ? `${plan.variant}, judged by the expectations of ${plan.expectOf}` : plan.variant) + (plan.family === 6 ? ', over IPv6' : '');
  const rfc = plan.rfc.length ? `<p class="meta">See ${plan.rfc.map(esc).join('; ')}.</p>` : '';
  const rsts = verdict.rsts.length
    ? `<ul class="rst-list">${verdict.rsts.map((s) => `<li>${esc(rstLabel(s))}: ${esc(reasonText(s))}<br><span class="mono">${esc(describeRst(s))}</span></li>`).join('')}</ul>`
    : '<p>None.</p>';
  const apps = Object.values(r.obs.conns).flatMap((c) =>
    [c.initiator, c.acceptor].filter((e) => e !== undefined).map((end) => {
      const events = end!.events.map((e) => (e.event === 'error' ? `<span class="error">${esc(e.code ?? 'error')}</span>` : esc(e.event)) + ` <span class="meta">@${e.t.toFixed(1)} ms</span>`);
      return `<tr><td>${esc(c.id)}</td><td>${esc(end!.host)}</td><td class="mono">${esc(end!.localPort ?? '?')}</td><td>${events.join(', ') || '(nothing)'}</td></tr>`;
    }),
  );
  const expectations = verdict.results.map((x) => {
    const mark = x.passed ? '<span class="pass-mark">✔</span>' : '<span class="fail-mark">✘</span>';
    const detail = !x.passed && x.detail ? `<pre class="mono">${esc(x.detail)}</pre>` : '';
    return `<tr><td>${mark}</td><td>${esc(x.summary)}${detail}</td><td class="mono where">${esc(`${basename(plan.file)}:${x.line}`)}</td></tr>`;
  });
  const body = `<p class="meta">rstlab · ${esc(new Date(r.t0).toISOString())} · lab ${esc(r.labId)} on ${esc(r.backend)}</p>
<h1>${esc(plan.name)} <span class="meta">(${esc(variant)})</span></h1>
<p><span class="verdict ${verdict.passed ? 'pass">PASS' : 'fail">FAIL'}</span>${esc(plan.summary)}</p>
<h2>Why</h2>
<div class="explanation">${prose(plan.explanation)}</div>
${rfc}
${ladder.html}
<h2>RSTs</h2>
${rsts}
<h2>What the applications saw</h2>
<table><thead><tr><th>connection</th><th>host</th><th>port</th><th>events (ms since the first step)</th></tr></thead><tbody>${apps.join('\n')}</tbody></table>
<h2>Expectations</h2>
<table><tbody>${expectations.join('\n')}</tbody></table>
${teachSection(r)}
${packets}
${captures}`;
  return page(`rstlab ${plan.name} (${plan.variant})`, body);
}

export async function writeReportHtml(r: RunResult, opts: HtmlOptions = {}): Promise<string> {
  const file = join(r.dir, REPORT_HTML);
  await writeFile(file, reportHtml(r, opts));
  return file;
}

/** The index of a `run --all --html`: one line per run, linking its report. */
export async function writeIndexHtml(runsDir: string, results: RunResult[]): Promise<string> {
  const file = join(runsDir, 'index.html');
  const rows = results.map((r) => {
    const senders = [...new Set(r.verdict.rsts.map((s) => s.from ?? '?'))].join(', ') || '—';
    const href = relative(runsDir, join(r.dir, REPORT_HTML));
    return `<tr><td><a href="${esc(href)}">${esc(r.plan.name)}</a></td><td>${esc(r.plan.variant)}${r.plan.family === 6 ? ' (IPv6)' : ''}</td><td>${r.verdict.passed ? '<span class="pass-mark">PASS</span>' : '<span class="fail-mark">FAIL</span>'}</td><td>${r.verdict.rsts.length}</td><td>${esc(senders)}</td><td>${esc(r.plan.summary)}</td></tr>`;
  });
  const passed = results.filter((r) => r.verdict.passed).length;
  const body = `<h1>rstlab: every scenario</h1>
<p class="meta">${esc(new Date().toISOString())} · ${passed} passed, ${results.length - passed} failed</p>
<table><thead><tr><th>scenario</th><th>variant</th><th>verdict</th><th>RSTs</th><th>sent by</th><th>what happens</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>`;
  await writeFile(file, page('rstlab: every scenario', body));
  return file;
}
