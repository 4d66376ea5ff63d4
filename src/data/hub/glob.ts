/**
 * Glob patterns for choosing repository files (`include` / `exclude`).
 *
 * Written here rather than adding picomatch: the hub only needs a handful of forms and
 * 60 lines are easier to audit than a dependency. Semantics, on '/'-separated repo paths:
 *   `*`      any characters within one path segment
 *   `?`      one character within a segment
 *   `**`     as a whole segment: zero or more segments (`data/**`, `**\/x.parquet`)
 *   `[abc]`  `[a-z]` `[!a]`  a character class
 *   `{a,b}`  alternatives
 * A pattern without '/' matches the file's base name anywhere in the tree (as in
 * .gitignore), so `*.parquet` selects `data/train-00000.parquet`.
 */

export type PathMatcher = (path: string) => boolean;

export function compileGlob(pattern: string): PathMatcher {
  const cleaned = pattern.replace(/^\.?\//, '');
  if (cleaned === '') throw new Error(`empty glob pattern: "${pattern}"`);
  const regex = new RegExp(`^${globToRegexSource(cleaned, pattern)}$`);
  if (!cleaned.includes('/')) {
    return (path) => regex.test(path.slice(path.lastIndexOf('/') + 1));
  }
  return (path) => regex.test(path);
}

/** True for paths matched by some `include` pattern and by no `exclude` pattern. */
export function compileSelection(include: string[], exclude: string[]): PathMatcher {
  const inc = include.map(compileGlob);
  const exc = exclude.map(compileGlob);
  return (path) => inc.some((m) => m(path)) && !exc.some((m) => m(path));
}

function globToRegexSource(glob: string, original: string): string {
  let out = '';
  let braceDepth = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      // Inside {a,b} the alternatives' edges are segment edges too.
      const before = glob[i - 1];
      const next = glob[i + 2];
      const startsSegment = i === 0 || before === '/' || (braceDepth > 0 && (before === '{' || before === ','));
      const endsSegment = next === undefined || next === '/' || (braceDepth > 0 && (next === '}' || next === ','));
      if (!startsSegment || !endsSegment) {
        throw new Error(`glob "${original}": '**' must be a whole path segment (like data/**/x)`);
      }
      if (next === '/') {
        out += '(?:[^/]*/)*'; // `**/`: zero or more leading segments
        i += 2;
      } else {
        out += '.*'; // trailing `**`: anything, including nothing
        i += 1;
      }
    } else if (c === '*') {
      out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) throw new Error(`glob "${original}": unclosed '['`);
      let body = glob.slice(i + 1, end);
      if (body.startsWith('!')) body = '^' + body.slice(1);
      out += `[${body.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else if (c === '{') {
      braceDepth++;
      out += '(?:';
    } else if (c === '}' && braceDepth > 0) {
      braceDepth--;
      out += ')';
    } else if (c === ',' && braceDepth > 0) {
      out += '|';
    } else {
      out += c.replace(/[.+^$()|\\\]{}]/g, '\\$&');
    }
  }
  if (braceDepth > 0) throw new Error(`glob "${original}": unclosed '{'`);
  return out;
}
