// `rstlab explain NAME`: everything a class needs about one cause, in the terminal: what it
// is (the scenario's explanation), which of the nine common causes it covers, how the
// scenario provokes it, what it looks like in Wireshark (with display filters), how to tell
// it from the causes it resembles, and how it is found and fixed on real machines.
import type { LoadedScenario } from '../scenario/load.js';
import { causeLine } from '../scenario/causes.js';
import { wrap } from './text.js';

export function renderExplain(s: LoadedScenario, style: { color: boolean }): string {
  const sc = s.scenario;
  const paint = (code: string) => (t: string) => (style.color ? `\x1b[${code}m${t}\x1b[0m` : t);
  const bold = paint('1');
  const dim = paint('2');
  const out: string[] = [bold(`${sc.name} — ${sc.summary}`), ''];
  const t = sc.teach;
  if (t) {
    out.push(bold(t.causes.length > 1 ? 'The common causes it covers' : 'The common cause it covers'));
    for (const c of t.causes) out.push(`  ${causeLine(c)}`);
    out.push('');
  }
  out.push(bold('The cause'), ...wrap(sc.explanation, 88, '  '));
  if (sc.rfc?.length) out.push(dim(`  See ${sc.rfc.join('; ')}.`));
  out.push('');
  // every run over IPv6 says why it skips such a scenario; so does its explanation
  if (sc.ipv6?.skip) out.push(bold('Over IPv6'), ...wrap(`Not run over IPv6 (--family 6 skips it): ${sc.ipv6.skip}`, 88, '  '), '');
  if (!t) {
    out.push(dim('This scenario has no teaching notes (a `teach:` section in its file).'));
  } else {
    out.push(bold('How this scenario provokes it'), ...wrap(t.provokes, 88, '  '), '');
    out.push(bold('In Wireshark'));
    const width = Math.max(...t.wireshark.filters.map((f) => f.filter.length));
    for (const f of t.wireshark.filters) out.push(`  ${f.filter.padEnd(width)}   ${dim(f.shows)}`);
    out.push('', ...wrap(t.wireshark.looksLike, 88, '  '), '');
    if (t.resembles.length > 0) {
      out.push(bold('Telling it from the causes it resembles'));
      for (const r of t.resembles) out.push(...wrap(`${r.scenario}: ${r.tell}`, 88, '  ').map((l, i) => (i === 0 ? l.replace(/^ {2}/, '  • ') : `  ${l}`)));
      out.push('');
    }
    out.push(bold('Finding it in practice'), ...wrap(t.inPractice.find, 88, '  '), '');
    out.push(bold('Fixing it'), ...wrap(t.inPractice.fix, 88, '  '), '');
  }
  const variants = s.variants.filter((v) => v !== 'cause');
  out.push(dim(`Run it: rstlab run ${sc.name}${variants.length ? `   (and --variant ${variants.join('|')})` : ''}${sc.ipv6?.skip ? '' : '; --family 6 over IPv6'}; add --html for a report to show, all.pcapng opens in Wireshark.`));
  return out.join('\n');
}
