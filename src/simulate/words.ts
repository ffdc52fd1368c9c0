// Addresses as arrays of unsigned 32-bit words (1 for IPv4, 4 for IPv6): the simulator's hot path
// compares and walks them with plain integer operations instead of bigints.

import { parseIp, parseIpv4Word, parsePrefix, type Family } from "../model/address.ts";

export type Words = readonly number[];

export interface WordPrefix {
  readonly family: Family;
  readonly len: number;
  /** Network words (host bits cleared). */
  readonly value: Words;
  readonly mask: Words;
}

const wordCount = (family: Family): number => (family === 4 ? 1 : 4);

function bigintToWords(family: Family, value: bigint): number[] {
  const n = wordCount(family);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = Number((value >> BigInt(32 * (n - 1 - i))) & 0xffffffffn);
  return out;
}

/** Dotted quad to a word without regexes or bigints; undefined when it is not one. */
export const fastIpv4 = parseIpv4Word;

interface ParsedAddress {
  readonly family: Family;
  readonly words: Words;
}

export function parseAddressWords(text: string): ParsedAddress | undefined {
  if (!text.includes(":")) {
    const v4 = fastIpv4(text);
    return v4 === undefined ? undefined : { family: 4, words: [v4] };
  }
  const ip = parseIp(text);
  return ip === undefined ? undefined : { family: ip.family, words: bigintToWords(ip.family, ip.value) };
}

export function zeroWords(family: Family): Words {
  return family === 4 ? ZERO4 : ZERO6;
}
const ZERO4: Words = [0];
const ZERO6: Words = [0, 0, 0, 0];

function maskWords(family: Family, len: number): number[] {
  const n = wordCount(family);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const bits = Math.max(0, Math.min(32, len - 32 * i));
    out[i] = bits === 0 ? 0 : bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
  }
  return out;
}

/** A canonical prefix text ("default" needs the family) as words; undefined when it is not one. */
export function parseWordPrefix(text: string, family: Family): WordPrefix | undefined {
  if (text === "default" || text === "all") {
    return { family, len: 0, value: zeroWords(family), mask: zeroWords(family) };
  }
  const p = parsePrefix(text);
  if (p === undefined || p.family !== family) return undefined;
  return { family, len: p.len, value: bigintToWords(family, p.value), mask: maskWords(family, p.len) };
}

export function prefixMatches(prefix: WordPrefix, words: Words): boolean {
  const value = prefix.value;
  const mask = prefix.mask;
  for (let i = 0; i < value.length; i++) {
    if (((words[i] ?? 0) & (mask[i] ?? 0)) >>> 0 !== value[i]) return false;
  }
  return true;
}

/** Bit `i` (0 = most significant) of an address. */
export function bitAt(words: Words, i: number): number {
  return ((words[i >>> 5] ?? 0) >>> (31 - (i & 31))) & 1;
}

/** A word-set membership key (IPv4: the number itself; IPv6: joined words). */
export function wordsKey(words: Words): string | number {
  return words.length === 1 ? (words[0] ?? 0) : words.join(",");
}

/** First-octet checks the kernel makes before routing (IPv4). */
export function ipv4Class(
  word: number,
): "zeronet" | "loopback" | "multicast" | "lbcast" | "class-e" | "normal" {
  const first = word >>> 24;
  if (word === 0xffffffff) return "lbcast";
  if (first === 0) return "zeronet";
  if (first === 127) return "loopback";
  if (first >= 224 && first <= 239) return "multicast";
  if (first >= 240) return "class-e";
  return "normal";
}
