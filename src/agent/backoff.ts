// Exponential backoff between failed reconciles: initial, doubled per failure, capped; reset on success.

export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 30_000 };

/** Delay before retry number `failures` (1 = after the first failure). */
export function backoffDelay(failures: number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  if (failures <= 0) return 0;
  // 2 ** 30 overflows nothing but is far above any cap: clamp the exponent first.
  const exponent = Math.min(failures - 1, 30);
  return Math.min(options.initialMs * 2 ** exponent, options.maxMs);
}
