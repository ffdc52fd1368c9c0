// The common case of the validator, IPv4 pools and gateways, read as 32-bit numbers: no bigint, no
// slices, and no parse -> format -> parse to get the canonical text. Every function here answers
// only for text it fully accepts; anything else (IPv6, a typo, host bits) returns undefined and the
// caller takes the general path through src/model/address.ts, which writes the messages.

/**
 * The dotted quad text[0..end) as a number, with exactly the rules of parseIpv4Word (no leading
 * zeros, four octets of 0-255); undefined otherwise.
 */
function ipv4WordBefore(text: string, end: number): number | undefined {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return undefined;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return undefined;
      octet = octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return undefined;
    } else {
      return undefined;
    }
  }
  if (dots !== 3 || digits === 0) return undefined;
  return value * 256 + octet;
}

/** A single IPv4 address; its text is already canonical when this accepts it. */
export function ipv4Word(text: string): number | undefined {
  return ipv4WordBefore(text, text.length);
}

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
  // The length: "0" or 1-3 digits without a leading zero, at most 32.
  const digits = text.length - slash - 1;
  if (digits < 1 || digits > 3) return undefined;
  let len = 0;
  for (let i = slash + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57 || (i === slash + 1 && c === 48)) return undefined;
    len = len * 10 + (c - 48);
  }
  if (len > 32) return undefined;
  // Host bits set: the low 32-len bits (ToInt32 keeps them, whatever the high bit).
  if ((word & ((1 << (32 - len)) - 1)) !== 0) return undefined;
  return { word, len, text: len === 32 ? text.slice(0, slash) : text };
}
