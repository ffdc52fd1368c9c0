// MetalLB IPAddressPool `spec.addresses` entries ("192.0.2.0/24", "192.0.2.10-192.0.2.20",
// "2001:db8::/64") as the minimal list of canonical prefixes symroute's config takes.

import { formatPrefix, parseIp, parsePrefix, rangePrefixes } from "../../model/address.ts";

type PoolEntryResult =
  | { readonly ok: true; readonly prefixes: readonly string[] }
  | { readonly ok: false; readonly problem: string };

export function poolEntryToPrefixes(entry: string): PoolEntryResult {
  const text = entry.trim();
  const dash = text.indexOf("-");
  if (dash >= 0) {
    const from = parseIp(text.slice(0, dash).trim());
    const to = parseIp(text.slice(dash + 1).trim());
    if (from === undefined || to === undefined) {
      return { ok: false, problem: `${JSON.stringify(entry)} is not a range of two IP addresses` };
    }
    if (from.family !== to.family) {
      return { ok: false, problem: `${JSON.stringify(entry)} mixes IPv4 and IPv6` };
    }
    if (from.value > to.value) {
      return { ok: false, problem: `${JSON.stringify(entry)} ends before it starts` };
    }
    const blocks = rangePrefixes(from.family, from.value, to.value);
    if (blocks.some((b) => b.len === 0)) {
      return {
        ok: false,
        problem: `${JSON.stringify(entry)} covers every address; symroute refuses a /0 pool`,
      };
    }
    return { ok: true, prefixes: blocks.map(formatPrefix) };
  }
  // MetalLB (Go's net.ParseCIDR) accepts host bits and clears them; so do we.
  const prefix = parsePrefix(text);
  if (prefix === undefined || !text.includes("/")) {
    return { ok: false, problem: `${JSON.stringify(entry)} is neither a CIDR nor a range "FIRST-LAST"` };
  }
  if (prefix.len === 0) {
    return {
      ok: false,
      problem: `${JSON.stringify(entry)} covers every address; symroute refuses a /0 pool`,
    };
  }
  return { ok: true, prefixes: [formatPrefix(prefix)] };
}
