// `rstlab list`: every scenario with the common causes it covers (their numbers), its
// summary and variants; then the nine common causes with the scenarios that show each.
import { COMMON_CAUSES, causeNumber } from '../scenario/causes.js';
import type { LoadedScenario } from '../scenario/load.js';

export function renderList(all: LoadedScenario[]): string {
  const width = Math.max(...all.map((s) => s.scenario.name.length));
  const causes = (s: LoadedScenario) => (s.scenario.teach?.causes ?? []).map(causeNumber).sort((a, b) => a - b).join(',') || '-';
  const causeWidth = Math.max('causes'.length, ...all.map((s) => causes(s).length));
  const lines = [`${'scenario'.padEnd(width)}  ${'causes'.padEnd(causeWidth)}  what happens`];
  for (const s of all) {
    const variants = s.variants.filter((v) => v !== 'cause');
    lines.push(`${s.scenario.name.padEnd(width)}  ${causes(s).padEnd(causeWidth)}  ${s.scenario.summary}${variants.length ? `  [variants: ${variants.join(', ')}]` : ''}`);
  }
  lines.push('', `The ${COMMON_CAUSES.length} common causes of a reset (rstlab explain SCENARIO tells each):`);
  const titleWidth = Math.max(...COMMON_CAUSES.map((c) => c.title.length));
  COMMON_CAUSES.forEach((c, i) => {
    const shown = all.filter((s) => s.scenario.teach?.causes.includes(c.id)).map((s) => s.scenario.name);
    lines.push(`  ${i + 1}. ${c.title.padEnd(titleWidth)}  ${shown.join(', ') || '(no scenario yet)'}`);
  });
  return lines.join('\n');
}
