/**
 * References in a shell command are never pasted into its text. A value pasted into
 * `bash -c` is code: a param or a hub file name holding `$(...)`, a backtick, `;` or a quote
 * would run commands. Instead each `${{ ... }}` in the command becomes an environment
 * variable reference, `${PIPELINE_REF_<n>}`, and the variable is set to the reference's value;
 * bash expands a variable's value without parsing it again.
 *
 * The replacement depends on where bash is at that point of the command, so that the
 * command means what it meant when values were pasted:
 *   - unquoted or inside "...":   ${PIPELINE_REF_0}
 *   - inside '...':               '"${PIPELINE_REF_0}"'   (closes the quote, expands, reopens)
 *   - inside $'...':              '"${PIPELINE_REF_0}"$'
 *   - inside $(( )) or (( )):     ${PIPELINE_NUM_0}: bash evaluates a variable's value as an
 *     arithmetic expression, and `a[$(cmd)]` in one runs cmd, so such a value must be a
 *     number (the shell stage's schema refuses any other value before the command starts).
 * Whatever the scanner below concludes about quoting, only variable references are inserted:
 * a wrong conclusion can change how a value is split, never make it code.
 */
import { parseTemplate, type Ref } from './refs.js';

export const REF_VAR_PREFIX = 'PIPELINE_REF_';
export const NUM_VAR_PREFIX = 'PIPELINE_NUM_';

export interface ShellRewrite {
  /** The command with every reference replaced by a variable reference. */
  cmd: string;
  /** Variable name -> the reference's text (`${{ params.x }}`), resolved like any param. */
  vars: Record<string, string>;
}

/** Null when the command holds no reference. Throws RefSyntaxError on a malformed one. */
export function rewriteShellReferences(cmd: string): ShellRewrite | null {
  const template = parseTemplate(cmd);
  if (!template) return null;
  const scanner = new QuoteScanner();
  const vars: Record<string, string> = {};
  let out = '';
  for (const part of template.parts) {
    if (typeof part === 'string') {
      scanner.feed(part);
      out += part;
      continue;
    }
    const context = scanner.context();
    const name = `${context === 'arithmetic' ? NUM_VAR_PREFIX : REF_VAR_PREFIX}${Object.keys(vars).length}`;
    vars[name] = (part as Ref).text;
    out += expansion(name, context);
  }
  return { cmd: out, vars };
}

type Context = 'plain' | 'single' | 'ansi' | 'arithmetic';

function expansion(name: string, context: Context): string {
  if (context === 'single') return `'"\${${name}}"'`;
  if (context === 'ansi') return `'"\${${name}}"$'`;
  return `\${${name}}`;
}

type Frame =
  | { kind: 'code'; parens: number; closer: ')' | '`' | null }
  | { kind: 'arithmetic'; parens: number }
  | { kind: 'double' }
  | { kind: 'single' }
  | { kind: 'ansi' };

/**
 * Follows bash's quoting through a command, far enough to know the context of each
 * reference: quotes, `\` escapes, `$( )` and backticks (which start a new quoting level
 * even inside "..."), `$(( ))` / `(( ))`, and comments. Here-documents are not followed.
 */
class QuoteScanner {
  private stack: Frame[] = [{ kind: 'code', parens: 0, closer: null }];
  /** The previous character, for comments (a `#` starts one only at the start of a word). */
  private prev = '\n';

  context(): Context {
    const top = this.top();
    if (top.kind === 'single') return 'single';
    if (top.kind === 'ansi') return 'ansi';
    if (top.kind === 'arithmetic') return 'arithmetic';
    return 'plain';
  }

  feed(text: string): void {
    for (let i = 0; i < text.length; i++) i = this.step(text, i);
  }

  private top(): Frame {
    return this.stack[this.stack.length - 1];
  }

  /** Consumes the character at i (and what it starts); returns the index of the last one consumed. */
  private step(s: string, i: number): number {
    const c = s[i];
    const top = this.top();
    const at = (str: string) => s.startsWith(str, i);
    const consumed = (last: number) => {
      this.prev = s[last];
      return last;
    };
    if (top.kind === 'single') {
      if (c === "'") this.stack.pop();
      return consumed(i);
    }
    if (top.kind === 'ansi') {
      if (c === '\\') return consumed(i + 1);
      if (c === "'") this.stack.pop();
      return consumed(i);
    }
    if (c === '\\') return consumed(i + 1);
    if (at('$((')) {
      this.stack.push({ kind: 'arithmetic', parens: 0 });
      return consumed(i + 2);
    }
    if (at('$(')) {
      this.stack.push({ kind: 'code', parens: 0, closer: ')' });
      return consumed(i + 1);
    }
    if (top.kind === 'double') {
      if (c === '"') this.stack.pop();
      else if (c === '`') this.stack.push({ kind: 'code', parens: 0, closer: '`' });
      return consumed(i);
    }
    if (top.kind === 'arithmetic') {
      if (c === '(') top.parens++;
      else if (at('))') && top.parens === 0) {
        this.stack.pop();
        return consumed(i + 1);
      } else if (c === ')') top.parens--;
      return consumed(i);
    }
    // Code: unquoted text at the top level or inside $( ) / backticks.
    if (c === '#' && /[\s;&|(]/.test(this.prev)) {
      const end = s.indexOf('\n', i);
      return consumed(end < 0 ? s.length - 1 : end);
    }
    if (at("$'")) {
      this.stack.push({ kind: 'ansi' });
      return consumed(i + 1);
    }
    if (c === "'") this.stack.push({ kind: 'single' });
    else if (c === '"') this.stack.push({ kind: 'double' });
    else if (c === '`' && top.closer === '`') this.stack.pop();
    else if (c === '`') this.stack.push({ kind: 'code', parens: 0, closer: '`' });
    else if (at('((') && /[\s;&|(]/.test(this.prev)) {
      this.stack.push({ kind: 'arithmetic', parens: 0 });
      return consumed(i + 1);
    } else if (c === '(') top.parens++;
    else if (c === ')' && top.parens === 0 && top.closer === ')') this.stack.pop();
    else if (c === ')') top.parens = Math.max(0, top.parens - 1);
    return consumed(i);
  }
}
