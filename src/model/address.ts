// IP addresses and prefixes as bigints, in the canonical text forms `ip -j` prints.
// Pure: no imports but memo.ts, so every layer (and the simulator's hot path) can use it.

import { recentMemo } from "./memo.ts";

export type Family = 4 | 6;

export interface Ip {
  readonly family: Family;
  readonly value: bigint;
}

export interface Prefix {
  readonly family: Family;
  /** Network address with host bits cleared. */
  readonly value: bigint;
  readonly len: number;
}

export const familyBits = (family: Family): number => (family === 4 ? 32 : 128);

/** A dotted quad as a 32-bit number, or undefined; also the simulator's hot path. */
export function parseIpv4Word(text: string): number | undefined {
  return ipv4WordBefore(text, text.length);
}

/** The dotted quad text[0..end): no slice needed to read the address of "a.b.c.d/len". */
function ipv4WordBefore(text: string, end: number): number | undefined {
  // A hand-written scanner: this runs for every address of every dump and config.
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
      // Leading zeros are refused: "010" means octal to some tools and decimal to others.
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

function parseIpv4(text: string): bigint | undefined {
  const word = parseIpv4Word(text);
  return word === undefined ? undefined : BigInt(word);
}

/** A 32-bit number as a dotted quad. */
function formatIpv4Word(word: number): string {
  return `${word >>> 24}.${(word >>> 16) & 0xff}.${(word >>> 8) & 0xff}.${word & 0xff}`;
}

/** The network mask of an IPv4 prefix length as a 32-bit number. */
const ipv4Mask = (len: number): number => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

function parseIpv6(text: string): bigint | undefined {
  // A hand-written scanner, like parseIpv4: groups of 1-4 hex digits, one "::", and an embedded
  // IPv4 address only as the last 32 bits.
  const words: number[] = [];
  let gap = -1;
  let i = 0;
  const n = text.length;
  if (n < 2) return undefined;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return undefined;
    gap = 0;
    i = 2;
    if (i === n) return 0n;
  }
  while (i < n) {
    let j = i;
    let word = 0;
    while (j < n && j - i < 5) {
      const h = hexValue(text.charCodeAt(j));
      if (h < 0) break;
      word = word * 16 + h;
      j++;
    }
    const c = j < n ? text.charCodeAt(j) : -1;
    if (c === 46) {
      // Embedded IPv4: the rest of the text.
      const v4 = parseIpv4(text.slice(i));
      if (v4 === undefined || words.length > 6) return undefined;
      words.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      i = n;
      break;
    }
    if (j === i || j - i > 4) return undefined;
    words.push(word);
    if (j === n) {
      i = n;
      break;
    }
    if (c !== 58) return undefined;
    if (j + 1 < n && text.charCodeAt(j + 1) === 58) {
      if (gap >= 0) return undefined;
      gap = words.length;
      i = j + 2;
      if (i === n) break;
    } else {
      i = j + 1;
      if (i === n) return undefined;
    }
  }
  if (words.length > 8 || (gap >= 0 && words.length > 7) || (gap < 0 && words.length !== 8)) return undefined;
  const full =
    gap < 0
      ? words
      : [...words.slice(0, gap), ...new Array<number>(8 - words.length).fill(0), ...words.slice(gap)];
  let value = 0n;
  for (const w of full) value = (value << 16n) | BigInt(w);
  // ::a.b.c.d (deprecated IPv4-compatible) is ambiguous across libraries: refuse it.
  if (value >> 32n === 0n && value > 0xffffn && text.includes(".")) return undefined;
  return value;
}

export function parseIp(text: string): Ip | undefined {
  if (text.includes(":")) {
    const value = parseIpv6(text);
    return value === undefined ? undefined : { family: 6, value };
  }
  const value = parseIpv4(text);
  return value === undefined ? undefined : { family: 4, value };
}

export function formatIp(family: Family, value: bigint): string {
  // Numbers, not bigint shifts: this runs for every address of every dump and payload.
  if (family === 4) return formatIpv4Word(Number(BigInt.asUintN(32, value)));
  const hex = BigInt.asUintN(128, value).toString(16).padStart(32, "0");
  const words: number[] = [];
  for (let i = 0; i < 32; i += 4) words.push(parseInt(hex.slice(i, i + 4), 16));
  // RFC 5952: compress the longest run (>= 2) of zero words, the first one on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (value >> 32n === 0xffffn) {
    return `::ffff:${formatIp(4, value & 0xffffffffn)}`;
  }
  const groups = (ws: number[]): string => ws.map((w) => w.toString(16)).join(":");
  if (bestStart < 0) return groups(words);
  return `${groups(words.slice(0, bestStart))}::${groups(words.slice(bestStart + bestLen))}`;
}

function buildMasks(family: Family): bigint[] {
  const bits = BigInt(familyBits(family));
  const all = (1n << bits) - 1n;
  return Array.from({ length: familyBits(family) + 1 }, (_, len) =>
    len === 0 ? 0n : all ^ ((1n << (bits - BigInt(len))) - 1n),
  );
}
// Masks are asked for on every prefix comparison: compute each once.
const MASKS: Readonly<Record<Family, readonly bigint[]>> = { 4: buildMasks(4), 6: buildMasks(6) };

export function maskOf(family: Family, len: number): bigint {
  return MASKS[family][len] ?? 0n;
}

interface ParsePrefixOptions {
  /** Refuse host bits set below the prefix length ("1.2.3.4/24"). */
  readonly strict?: boolean;
}

/** A prefix length: 1-3 digits, no leading zero (what `/^(0|[1-9][0-9]{0,2})$/` accepts). */
/** The prefix length written from `start` to the end: 1-3 digits, no leading zero; undefined else. */
function parsePrefixLength(text: string, start: number): number | undefined {
  const digits = text.length - start;
  if (digits < 1 || digits > 3 || (digits > 1 && text.charCodeAt(start) === 48)) return undefined;
  let len = 0;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
    len = len * 10 + (c - 48);
  }
  return len;
}

/** "1.2.3.0/24", "1.2.3.4" (a host), "default" (family needed), "2001:db8::/64". */
export function parsePrefix(text: string, options: ParsePrefixOptions = {}): Prefix | undefined {
  return options.strict === true ? scanPrefix(text, options) : recentPrefix(text);
}

// A plan parses every pool, gateway and rule selector again; a Prefix is immutable, so one parse
// serves each text seen lately (the number of texts is bounded, see memo.ts).
const recentPrefix = recentMemo(4096, (text: string): Prefix | undefined => scanPrefix(text, {}));

/** parsePrefix without the memo. */
export function scanPrefix(text: string, options: ParsePrefixOptions): Prefix | undefined {
  const slash = text.indexOf("/");
  const end = slash < 0 ? text.length : slash;
  const v6 = text.lastIndexOf(":", end - 1) >= 0;
  let len = v6 ? 128 : 32;
  if (slash >= 0) {
    const given = parsePrefixLength(text, slash + 1);
    if (given === undefined || given > len) return undefined;
    len = given;
  }
  if (!v6) {
    // IPv4 in numbers, one bigint at the end: the common case of every dump and config.
    const word = ipv4WordBefore(text, end);
    if (word === undefined) return undefined;
    const network = (word & ipv4Mask(len)) >>> 0;
    if (options.strict === true && network !== word) return undefined;
    return { family: 4, value: BigInt(network), len };
  }
  const ip = parseIpv6(text.slice(0, end));
  if (ip === undefined) return undefined;
  const value = ip & maskOf(6, len);
  if (options.strict === true && value !== ip) return undefined;
  return { family: 6, value, len };
}

/** Canonical text: "1.2.3.0/24", a full-length prefix without "/32", and "default" for /0. */
export function formatPrefix(prefix: Prefix): string {
  if (prefix.len === 0) return "default";
  const addr = formatIp(prefix.family, prefix.value);
  return prefix.len === familyBits(prefix.family) ? addr : `${addr}/${prefix.len}`;
}

/** Always with a length: what nft and iptables want. */
export function formatCidr(prefix: Prefix): string {
  return `${formatIp(prefix.family, prefix.value)}/${prefix.len}`;
}

export function prefixContainsIp(prefix: Prefix, ip: Ip): boolean {
  return prefix.family === ip.family && (ip.value & maskOf(ip.family, prefix.len)) === prefix.value;
}

export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  return (
    outer.family === inner.family &&
    outer.len <= inner.len &&
    (inner.value & maskOf(inner.family, outer.len)) === outer.value
  );
}

export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  return prefixContains(a, b) || prefixContains(b, a);
}

/**
 * The length of "a.b.c.d/len" when formatCidr would write it exactly so (no host bits; the scanners
 * already refuse leading zeros), else -1. Most text in dumps and plans is canonical IPv4: it needs
 * no parse -> format round trip, and no bigint.
 */
function canonicalIpv4CidrLength(text: string): number {
  const slash = text.indexOf("/");
  if (slash < 0) return -1;
  const word = ipv4WordBefore(text, slash);
  const len = parsePrefixLength(text, slash + 1);
  if (word === undefined || len === undefined || len > 32) return -1;
  return (word & ipv4Mask(len)) >>> 0 === word ? len : -1;
}

/** formatCidr(parsePrefix(text)) is `text` itself, an IPv4 prefix (false: ask the general path). */
export const isCanonicalIpv4Cidr = (text: string): boolean => canonicalIpv4CidrLength(text) >= 0;

/** formatPrefix(parsePrefix(text)) is `text` itself, an IPv4 prefix (false: ask the general path). */
export function isCanonicalIpv4Prefix(text: string): boolean {
  if (!text.includes("/")) return parseIpv4Word(text) !== undefined;
  const len = canonicalIpv4CidrLength(text);
  // formatPrefix writes /0 as "default" and /32 without a length.
  return len > 0 && len < 32;
}

/** Canonicalise any accepted address text; undefined when it is not one. */
export function canonicalIp(text: string): string | undefined {
  // A dotted quad the scanner accepts is canonical already.
  if (parseIpv4Word(text) !== undefined) return text;
  const ip = parseIp(text);
  return ip === undefined ? undefined : formatIp(ip.family, ip.value);
}

/** Canonicalise any accepted prefix text; undefined when it is not one. */
export function canonicalPrefix(text: string, family?: Family): string | undefined {
  if (text === "default" || text === "all") return family === undefined ? undefined : "default";
  if (isCanonicalIpv4Prefix(text)) return text;
  const p = parsePrefix(text);
  return p === undefined ? undefined : formatPrefix(p);
}

/**
 * The fewest prefixes that cover `first`..`last` exactly (both included, one family): how a MetalLB
 * range such as 192.168.1.100-192.168.1.120 is written as CIDRs.
 */
export function rangePrefixes(family: Family, first: bigint, last: bigint): Prefix[] {
  const bits = familyBits(family);
  const out: Prefix[] = [];
  let at = first;
  while (at <= last) {
    // The largest block that starts at `at` (aligned) and ends within the range.
    let len = bits;
    while (len > 0) {
      const size = 1n << BigInt(bits - len + 1);
      if (at % size !== 0n || at + size - 1n > last) break;
      len--;
    }
    out.push({ family, value: at, len });
    at += 1n << BigInt(bits - len);
  }
  return out;
}
