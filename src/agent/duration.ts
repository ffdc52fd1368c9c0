// Durations on the command line: "250ms", "30s", "5m", or a bare number of seconds.

import { SymrouteError } from "../model/errors.ts";

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

export function parseDuration(text: string, flag: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (match === null) {
    throw new SymrouteError("invalid-argument", `${flag} ${JSON.stringify(text)} is not a duration`, {
      hint: 'write it like "250ms", "30s" or "5m" (a bare number means seconds)',
    });
  }
  return Math.round(Number(match[1]) * (UNIT_MS[match[2] ?? "s"] ?? 1_000));
}
