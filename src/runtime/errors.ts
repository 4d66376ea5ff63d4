/**
 * Errors the runtime reports to users. A PipelineError is bad input (pipeline file, params,
 * command line): it carries the source position of the offending YAML node when known and
 * maps to exit code 2. Stage failures are not errors of this kind: they are collected per
 * instance and reported at the end of a run (exit code 1).
 */
export interface SourcePos {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
}

export const EXIT = { ok: 0, stageFailed: 1, invalid: 2, sighup: 129, sigint: 130, sigterm: 143 } as const;

export class PipelineError extends Error {
  readonly exitCode: number = EXIT.invalid;
  constructor(
    message: string,
    readonly pos?: SourcePos,
  ) {
    super(message);
    this.name = 'PipelineError';
  }
  /** `file:line:col: message`, the form editors and terminals can jump to. */
  format(): string {
    return this.pos ? `${formatPos(this.pos)}: ${this.message}` : this.message;
  }
}

export function formatPos(p: SourcePos): string {
  return `${p.file}:${p.line}:${p.col}`;
}

/** Several load-time errors reported together (all of them, not only the first). */
export class PipelineErrors extends PipelineError {
  constructor(readonly errors: PipelineError[]) {
    super(errors.map((e) => e.format()).join('\n'), errors[0]?.pos);
  }
  format(): string {
    return this.message;
  }
}

/**
 * The machine, not the input, stopped a command (a full disk, a read-only folder): a clear
 * message and exit code 1, like a failed stage; never an "internal error".
 */
export class EnvironmentError extends Error {
  readonly exitCode: number = EXIT.stageFailed;
  format(): string {
    return `pipeline: ${this.message}`;
  }
}

/** An operating-system error (ENOSPC, EACCES, EROFS...): Node's errors carry its code. */
export function isSystemError(e: unknown): e is NodeJS.ErrnoException {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code);
}
