// The common case of the validator, IPv4 pools and gateways, read as 32-bit numbers: no bigint, no
// slices, and no parse -> format -> parse to get the canonical text. Every function here answers
// only for text it fully accepts; anything else (IPv6, a typo, host bits) returns undefined and the
// caller takes the general path through src/model/address.ts, which writes the messages. The
// scanners are the model's own, so both paths read the same text the same way.

import { ipv4WordBefore, parseIpv4Word, parsePrefixLength } from "../model/address.ts";

/** A single IPv4 address; its text is already canonical when this accepts it. */
export const ipv4Word = parseIpv4Word;

/** A strictly written IPv4 prefix of length 1-32 (no host bits), as numbers and canonical text. */
export interface Ipv4Prefix {
  readonly word: number;
  readonly len: number;
  /** What formatPrefix prints: the input itself, without "/32" for a single address. */
  readonly text: string;
}

/**
 * "a.b.c.d/len" or "a.b.c.d" when parsePrefix(text, {strict: true}) would give an IPv4 prefix of
 * length 1 to 32; undefined for everything else (including /0, which the caller reports).
 */
export function strictIpv4Prefix(text: string): Ipv4Prefix | undefined {
  const slash = text.indexOf("/");
  const word = ipv4WordBefore(text, slash < 0 ? text.length : slash);
  if (word === undefined) return undefined;
  if (slash < 0) return { word, len: 32, text };
  const len = parsePrefixLength(text, slash + 1);
  if (len === undefined || len === 0 || len > 32) return undefined;
  // Host bits set: the low 32-len bits (ToInt32 keeps them, whatever the high bit).
  if ((word & ((1 << (32 - len)) - 1)) !== 0) return undefined;
  return { word, len, text: len === 32 ? text.slice(0, slash) : text };
}
