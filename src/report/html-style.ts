// The style sheet and the little script of report.html, inline so that the page is one
// self-contained file: it opens from the file system, offline, and asks no network for
// anything (its Content-Security-Policy forbids every fetch: default-src 'none').
// Sized for a projector (large type, strong contrast) and for paper (@media print: the
// details every arrow hides on hover are in the packet table, which prints).

export const CSS = `
:root { --ink: #111; --muted: #555; --rst: #c4001a; --drop: #a64b00; --ok: #0a7a2f; --band: #eef1f6; --line: #8a8f98; }
* { box-sizing: border-box; }
html { font-size: 18px; }
body { margin: 0 auto; max-width: 1180px; padding: 1.2rem 1.5rem 3rem; color: var(--ink); background: #fff;
  font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; line-height: 1.45; }
h1 { font-size: 1.7rem; margin: 0.2rem 0 0.3rem; line-height: 1.2; }
h2 { font-size: 1.25rem; margin: 1.8rem 0 0.6rem; border-bottom: 2px solid #dde1e7; padding-bottom: 0.2rem; }
.meta { color: var(--muted); font-size: 0.9rem; }
.verdict { display: inline-block; padding: 0.1rem 0.7rem; border-radius: 0.4rem; color: #fff; font-weight: 700; margin-right: 0.5rem; }
.verdict.pass { background: var(--ok); } .verdict.fail { background: var(--rst); }
code, .mono { font-family: "DejaVu Sans Mono", ui-monospace, Menlo, Consolas, monospace; font-size: 0.92em; }
code { background: #f1f3f6; padding: 0 0.25em; border-radius: 3px; }
.explanation p { margin: 0.5rem 0; max-width: 60rem; }
figure { margin: 0.5rem 0; }
svg.ladder { width: 100%; height: auto; display: block; font-family: inherit; }
svg .fw-band { fill: var(--band); }
svg .host { font-size: 22px; font-weight: 700; fill: var(--ink); }
svg .addr, svg .point { font-size: 15px; fill: var(--muted); }
svg .point-name { font-size: 14px; fill: var(--muted); font-style: italic; }
svg .lane { stroke: var(--line); stroke-width: 1.5; }
svg .lane.uncaptured { stroke-dasharray: 4 6; }
svg .arrow { cursor: pointer; }
svg .arrow .hit { stroke: transparent; stroke-width: 26; }
svg .arrow .shaft { stroke: var(--ink); stroke-width: 2.2; }
svg .arrow .dot { fill: var(--ink); }
svg .head { fill: var(--ink); }
svg .arrow .label { font-size: 16px; fill: var(--ink); }
svg .arrow .time { font-size: 14px; fill: var(--muted); }
svg .arrow.rst .shaft { stroke: var(--rst); stroke-width: 4.5; }
svg .arrow.rst .dot, svg .head-rst { fill: var(--rst); }
svg .arrow.rst .label { fill: var(--rst); font-weight: 700; }
svg .arrow.icmp .shaft { stroke: var(--drop); stroke-dasharray: 8 5; }
svg .arrow.icmp .dot, svg .head-icmp { fill: var(--drop); }
svg .arrow.icmp .label { fill: var(--drop); font-style: italic; }
svg .arrow .rst-label { font-size: 17px; font-weight: 700; fill: var(--rst); }
svg .arrow .drop { font-size: 22px; font-weight: 700; fill: var(--drop); }
svg .arrow .drop-label { font-size: 13px; fill: var(--drop); }
svg .gap { font-size: 15px; fill: var(--muted); font-style: italic; }
svg .arrow:hover .shaft, svg .arrow:focus .shaft, svg .arrow.selected .shaft { stroke-width: 5; }
svg .arrow:focus { outline: none; }
svg .arrow.selected .label { text-decoration: underline; }
.hint { color: var(--muted); font-size: 0.85rem; }
#detail { position: sticky; bottom: 0; background: #fffbea; border: 2px solid #e3c86b; border-radius: 0.5rem; padding: 0.5rem 0.9rem; margin-top: 0.6rem; }
#detail[hidden] { display: none; }
#detail dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.1rem 1rem; margin: 0.3rem 0; }
#detail dt { font-weight: 700; } #detail dd { margin: 0; font-family: "DejaVu Sans Mono", monospace; }
table { border-collapse: collapse; width: 100%; font-size: 0.88rem; }
th, td { text-align: left; padding: 0.25rem 0.5rem; border-bottom: 1px solid #e3e6eb; vertical-align: top; }
th { background: #f4f6f9; }
td.where { white-space: nowrap; }
tr.rst td { color: var(--rst); font-weight: 700; }
tr.selected td { background: #fff3c4; }
.pass-mark { color: var(--ok); font-weight: 700; } .fail-mark { color: var(--rst); font-weight: 700; }
.error { color: var(--rst); font-weight: 700; }
.rst-list li { color: var(--rst); margin: 0.3rem 0; }
.rst-list li span { color: var(--ink); font-weight: normal; overflow-wrap: anywhere; }
ul.files { columns: 2; }
@media print {
  html { font-size: 11pt; }
  body { max-width: none; padding: 0; }
  @page { size: A4; margin: 12mm; }
  * { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
  .hint, #detail { display: none !important; }
  figure, tr, li { break-inside: avoid; }
  h2 { break-after: avoid; }
}
`;

/** Clicking (or Enter on) an arrow shows its fields below the ladder and marks its row in the packet table. */
export const SCRIPT = `
(function () {
  var detail = document.getElementById('detail');
  var arrows = document.querySelectorAll('svg .arrow');
  function show(a) {
    arrows.forEach(function (x) { x.classList.remove('selected'); });
    document.querySelectorAll('tr.selected').forEach(function (x) { x.classList.remove('selected'); });
    a.classList.add('selected');
    var rows = JSON.parse(a.getAttribute('data-details'));
    var dl = document.createElement('dl');
    rows.forEach(function (r) {
      var dt = document.createElement('dt'); dt.textContent = r[0];
      var dd = document.createElement('dd'); dd.textContent = r[1];
      dl.appendChild(dt); dl.appendChild(dd);
    });
    var title = document.createElement('strong');
    title.textContent = 'Packet ' + (Number(a.getAttribute('data-index')) + 1) + ': ' + a.getAttribute('aria-label');
    detail.replaceChildren(title, dl);
    detail.hidden = false;
    var tr = document.getElementById('pkt-' + a.getAttribute('data-index'));
    if (tr) tr.classList.add('selected');
  }
  arrows.forEach(function (a) {
    a.addEventListener('click', function () { show(a); });
    a.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); show(a); } });
  });
})();
`;
