// Errors that cross module boundaries carry a stable code (for clients and tests) and the
// context a user needs to act on them: which file, which job, which step.

export type ErrorContext = Record<string, string | number | boolean | null | undefined>;

export class WxError extends Error {
  override readonly name: string = 'WxError';
  constructor(
    /** Stable machine-readable code, e.g. `audio.truncated`, `model.shape_mismatch`. */
    readonly code: string,
    message: string,
    readonly context: ErrorContext = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  toJSON(): { code: string; message: string; context: ErrorContext } {
    return { code: this.code, message: this.message, context: this.context };
  }
}

/** A readable one-line reason for any thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
