// Every word that goes into an `ip -batch`, `nft -f`, `iptables-restore` or `ipset restore` payload
// passes one of these guards: a newline or a quote in a name must never reach a tool.

import { SymrouteError } from "./errors.ts";
import { recentMemo } from "./memo.ts";
import {
  canonicalIp,
  formatIp,
  formatPrefix,
  isCanonicalIpv4Cidr,
  isCanonicalIpv4Prefix,
  parsePrefix,
} from "./address.ts";

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

function refuse(what: string, value: unknown): never {
  throw new SymrouteError(
    "invalid-argument",
    `refusing to render ${what} ${JSON.stringify(value)}: not a safe token`,
    {
      hint: "this value should have been rejected by the config loader; please report it",
    },
  );
}

export function ifnameToken(name: string): string {
  if (!IFNAME.test(name) || name === "." || name === "..") refuse("interface name", name);
  return name;
}

// The address tokens check text that is canonical already, nearly always: the cheap IPv4 test
// answers first, and only other text is parsed and formatted again.

export function prefixToken(text: string): string {
  if (text === "default" || isCanonicalIpv4Prefix(text)) return text;
  const p = parsePrefix(text);
  if (p === undefined) refuse("prefix", text);
  return formatPrefix(p);
}

export function cidrToken(text: string): string {
  return recentCidr(text);
}

// Every pool of every network goes through here on every plan (the firewall's elements and guards).
const recentCidr = recentMemo(4096, (text: string): string => scanCidr(text));

/** cidrToken without the memo. */
export function scanCidr(text: string): string {
  if (isCanonicalIpv4Cidr(text)) return text;
  const p = parsePrefix(text);
  if (p === undefined) refuse("prefix", text);
  return `${formatIp(p.family, p.value)}/${p.len}`;
}

export function addressToken(text: string): string {
  const canonical = canonicalIp(text);
  if (canonical === undefined) refuse("address", text);
  return canonical;
}

export function uintToken(n: number, max = 0xffffffff): string {
  if (!Number.isInteger(n) || n < 0 || n > max) refuse("number", n);
  return String(n);
}

export function hexToken(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) refuse("mark", n);
  return `0x${n.toString(16)}`;
}

/** Comments in firewall rules: a safe subset, so they can be quoted without escapes. */
export function commentToken(text: string): string {
  if (!/^[A-Za-z0-9_.:/# -]{1,120}$/.test(text)) refuse("comment", text);
  return text;
}

/**
 * Whether an ipset's name is one symroute makes (buildIpsets in firewall.ts: `symroute-`, c or g,
 * the family, an 8-digit FNV digest; the fill's temporary set adds `-t`; the same format since the
 * first sets, so older nodes' sets match too): only such a set is symroute's. Another under its
 * prefix is someone else's and left alone: `symroute-a.b` failed the token guard and every plan;
 * `symroute-backup` was destroyed as stale, and with a foreign iptables rule using it every apply
 * failed.
 */
export const isSymrouteIpsetName = (name: string): boolean =>
  /^symroute-[cg][46]-[0-9a-f]{8}(-t)?$/.test(name);

/** A set name read back from the node goes into a payload only if symroute could have made it. */
export function ipsetNameToken(name: string): string {
  if (!isSymrouteIpsetName(name)) refuse("ipset name", name);
  return name;
}
