// " (did you mean \"x\"?)" after an unknown word: the nearest of the allowed words, when it is
// close enough to be a typo.

export function didYouMean(word: string, candidates: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = c.toLowerCase() === word.toLowerCase() ? 0 : editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  // Close enough to be a typo, not just another short word.
  const limit = Math.max(1, Math.min(3, Math.floor(word.length / 3)));
  return best !== undefined && best !== word && bestDistance <= limit ? ` (did you mean "${best}"?)` : '';
}

function editDistance(a: string, b: string): number {
  // Damerau (optimal string alignment): a swapped pair of letters is one typo, not two.
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
