// One error type for the whole tool, after nmstate's: a kind that says whose fault it is, a short
// message that points at the fault, the cause, and the next step for the user.

export type ErrorKind =
  | "invalid-argument"
  | "dependency"
  | "permission"
  | "verification"
  | "conflict"
  | "not-supported"
  | "kernel"
  | "busy";

export interface SymrouteErrorOptions {
  readonly cause?: unknown;
  /** What the user can do about it. */
  readonly hint?: string;
  /** Extra lines: every config issue, the failing batch line and the tool's stderr. */
  readonly details?: readonly string[];
  readonly retriable?: boolean;
}

export class SymrouteError extends Error {
  readonly kind: ErrorKind;
  readonly hint: string | undefined;
  readonly details: readonly string[];
  readonly retriable: boolean;

  constructor(kind: ErrorKind, message: string, options: SymrouteErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SymrouteError";
    this.kind = kind;
    this.hint = options.hint;
    this.details = options.details ?? [];
    this.retriable = options.retriable ?? false;
  }

  toJSON(): Record<string, unknown> {
    return {
      kind: this.kind,
      message: this.message,
      details: this.details,
      ...(this.hint === undefined ? {} : { hint: this.hint }),
    };
  }
}

export const isSymrouteError = (e: unknown): e is SymrouteError => e instanceof SymrouteError;
