// IP addresses and prefixes as bigints, in the canonical text forms `ip -j` prints.
// Pure: no imports, so every layer (and the simulator's hot path) can use it.

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
  // A hand-written scanner: this runs for every address of every dump and config.
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
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
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join(".");
  }
  const words: number[] = [];
  for (let i = 7; i >= 0; i--) words.push(Number((value >> BigInt(i * 16)) & 0xffffn));
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
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(":");
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
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

export interface ParsePrefixOptions {
  /** Refuse host bits set below the prefix length ("1.2.3.4/24"). */
  readonly strict?: boolean;
}

/** "1.2.3.0/24", "1.2.3.4" (a host), "default" (family needed), "2001:db8::/64". */
export function parsePrefix(text: string, options: ParsePrefixOptions = {}): Prefix | undefined {
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const ip = parseIp(addrText);
  if (ip === undefined) return undefined;
  const max = familyBits(ip.family);
  let len = max;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return undefined;
    len = Number(lenText);
    if (len > max) return undefined;
  }
  const value = ip.value & maskOf(ip.family, len);
  if (options.strict === true && value !== ip.value) return undefined;
  return { family: ip.family, value, len };
}

export function defaultPrefix(family: Family): Prefix {
  return { family, value: 0n, len: 0 };
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

/** Canonicalise any accepted prefix text; undefined when it is not one. */
export function canonicalPrefix(text: string, family?: Family): string | undefined {
  if (text === "default" || text === "all") return family === undefined ? undefined : "default";
  const p = parsePrefix(text);
  return p === undefined ? undefined : formatPrefix(p);
}

export function prefixFamily(text: string): Family | undefined {
  return parsePrefix(text)?.family;
}
