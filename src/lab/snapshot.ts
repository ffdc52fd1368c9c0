// A namespace's routing and filtering state as text, for byte-for-byte "back where we started"
// comparisons after `symroute delete`.

import { runTool } from "../adapters/exec.ts";

/** Section name (the command that produced it) to its output. */
export type Snapshot = Readonly<Record<string, string>>;

const IP_DUMPS: readonly (readonly string[])[] = [
  ["-j", "-d", "link", "show"],
  ["-4", "-j", "-d", "addr", "show"],
  ["-6", "-j", "-d", "addr", "show"],
  ["-4", "-j", "-d", "route", "show", "table", "all"],
  ["-6", "-j", "-d", "route", "show", "table", "all"],
  ["-4", "-j", "-d", "rule", "show"],
  ["-6", "-j", "-d", "rule", "show"],
];

/** The sysctls symroute may touch, and their neighbours that must not move either. */
const SYSCTL_PATTERN =
  /^net\.ipv4\.conf\.[^.]+\.(rp_filter|arp_ignore|arp_announce|arp_filter|src_valid_mark|accept_local|forwarding)$|^net\.ipv6\.conf\.[^.]+\.forwarding$|^net\.ipv4\.ip_forward$|^net\.ipv4\.fwmark_reflect$|^net\.ipv6\.fwmark_reflect$|^net\.ipv4\.tcp_fwmark_accept$/;

/**
 * An `ip -j` dump as configuration left it, for comparisons before and after a round trip (here and
 * in the test harness, test/support/netns.ts). What changes by itself is dropped: a fresh veth pair
 * comes up a moment after it is created and IPv6 DAD runs after that, so carrier (and the routes'
 * linkdown flag), operational state, DAD flags and address lifetimes move; so do a bridge's running
 * timers (gc_timer, hello_timer...).
 */
export function settledIpJson(ipJson: string): string {
  const transient = new Set(["NO-CARRIER", "LOWER_UP", "M-DOWN", "linkdown"]);
  const objects = JSON.parse(ipJson) as Record<string, unknown>[];
  for (const object of objects) {
    delete object["operstate"];
    const flags = object["flags"];
    if (Array.isArray(flags)) object["flags"] = flags.filter((f) => !transient.has(String(f)));
    const addresses = object["addr_info"];
    if (Array.isArray(addresses)) {
      for (const a of addresses as Record<string, unknown>[]) {
        for (const k of ["tentative", "dadfailed", "valid_life_time", "preferred_life_time"]) delete a[k];
      }
    }
  }
  return JSON.stringify(objects, (key, value: unknown) => (key.endsWith("_timer") ? undefined : value));
}

/** Handles and counter values change with every reload and packet; they are not state. */
function withoutVolatile(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutVolatile);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === "handle") continue;
    out[k] = k === "counter" ? "counter" : withoutVolatile(v);
  }
  return out;
}

/** Keeps only what carries meaning: chains with no rules (left by a front end) are dropped. */
function canonicalFirewall(nftJson: string): string {
  const parsed = JSON.parse(nftJson) as { nftables?: Record<string, Record<string, unknown>>[] };
  const items = parsed.nftables ?? [];
  const ruleCount = new Map<string, number>();
  const key = (o: Record<string, unknown>, chainField: string) =>
    `${String(o["family"])} ${String(o["table"])} ${String(o[chainField])}`;
  for (const item of items) {
    const rule = item["rule"];
    if (rule !== undefined) ruleCount.set(key(rule, "chain"), (ruleCount.get(key(rule, "chain")) ?? 0) + 1);
  }
  const kept: string[] = [];
  const tablesWithContent = new Set<string>();
  for (const item of items) {
    const [kind, body] = Object.entries(item)[0] ?? [];
    if (kind === undefined || body === undefined || kind === "metainfo") continue;
    if (kind === "chain" && (ruleCount.get(key(body, "name")) ?? 0) === 0) continue;
    if (kind === "table") continue;
    tablesWithContent.add(`${String(body["family"])} ${String(body["table"])}`);
    // A named counter's values move with traffic (the lab's ingress counters): only its name is state.
    const { packets: _packets, bytes: _bytes, ...rest } = body;
    kept.push(`${kind} ${JSON.stringify(withoutVolatile(kind === "counter" ? rest : body))}`);
  }
  return [...[...tablesWithContent].map((t) => `table ${t}`), ...kept].join("\n");
}

export async function snapshot(namespace: string): Promise<Snapshot> {
  const inNs = (argv: readonly string[]) => runTool("ip", ["netns", "exec", namespace, ...argv]);
  const sections: Record<string, string> = {};
  const ipResults = await Promise.all(IP_DUMPS.map((args) => runTool("ip", ["-n", namespace, ...args])));
  IP_DUMPS.forEach((args, i) => {
    sections[`ip ${args.join(" ")}`] = settledIpJson(ipResults[i]?.stdout ?? "[]");
  });
  const sysctl = await runTool("ip", ["netns", "exec", namespace, "sysctl", "-a"], { allowFailure: true });
  sections["sysctl"] = sysctl.stdout
    .split("\n")
    .filter((line) => SYSCTL_PATTERN.test(line.split(" = ")[0] ?? ""))
    .sort()
    .join("\n");
  const nft = await inNs(["nft", "-j", "list", "ruleset"]);
  sections["nft list ruleset (canonical)"] = canonicalFirewall(nft.stdout);
  // The iptables front end's ipsets (a set left behind is residue too); the hash seed and sizes
  // are the kernel's, not content.
  const sets = await runTool("ip", ["netns", "exec", namespace, "ipset", "save"], { allowFailure: true });
  sections["ipset save (canonical)"] = sets.stdout
    .split("\n")
    .map((line) => line.replace(/ (initval|hashsize|bucketsize) \S+/g, ""))
    .filter((line) => line !== "")
    .sort()
    .join("\n");
  return sections;
}

export interface SnapshotDifference {
  readonly section: string;
  readonly before: string;
  readonly after: string;
}

export function compareSnapshots(before: Snapshot, after: Snapshot): SnapshotDifference[] {
  const sections = new Set([...Object.keys(before), ...Object.keys(after)]);
  const differences: SnapshotDifference[] = [];
  for (const section of sections) {
    const a = before[section] ?? "";
    const b = after[section] ?? "";
    if (a !== b) differences.push({ section, before: a, after: b });
  }
  return differences;
}

/** A short, line-level account of a difference, for test failures and `lab demo`. */
export function describeDifference(d: SnapshotDifference): string {
  const split = (s: string) => (s.startsWith("[") ? JSON.stringify(JSON.parse(s), null, 1) : s).split("\n");
  const before = new Set(split(d.before));
  const after = new Set(split(d.after));
  const removed = [...before].filter((l) => !after.has(l)).map((l) => `  - ${l.trim()}`);
  const added = [...after].filter((l) => !before.has(l)).map((l) => `  + ${l.trim()}`);
  return [`${d.section}:`, ...removed.slice(0, 20), ...added.slice(0, 20)].join("\n");
}
