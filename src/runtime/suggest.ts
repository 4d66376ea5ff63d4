/**
 * "Did you mean ...?" for a misspelt name (a param, a key, a stage, a stage type): the one
 * candidate within a few edits of it, or that it is a clear prefix of. Nothing when several fit
 * as well or the name is too short to judge.
 */

/** Edits (insert, delete, substitute, swap two neighbours) between two strings. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

export function closest(name: string, candidates: Iterable<string>): string | undefined {
  const all = [...new Set(candidates)].filter((c) => c !== name);
  const lower = name.toLowerCase();
  const sameLetters = all.filter((c) => c.toLowerCase() === lower);
  if (sameLetters.length === 1) return sameLetters[0];
  // A third of the name's letters may be wrong: 'shel' -> 'shell', not 'm' -> 'n'.
  const allowed = Math.floor(name.length / 3);
  const scored = all.map((c) => ({ c, d: distance(lower, c.toLowerCase()) })).filter((x) => x.d <= allowed);
  const best = Math.min(...scored.map((x) => x.d));
  const near = scored.filter((x) => x.d === best);
  if (near.length === 1) return near[0].c;
  if (near.length > 1 || name.length < 4) return undefined;
  const extending = all.filter((c) => c.toLowerCase().startsWith(lower));
  return extending.length === 1 ? extending[0] : undefined;
}

/** `. Did you mean 'x'?` to end a message with, or nothing. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const c = closest(name, candidates);
  return c === undefined ? '' : `. Did you mean '${c}'?`;
}
