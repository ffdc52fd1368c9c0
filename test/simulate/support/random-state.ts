// Random rule sets, route sets and packets for the differential test, over a fixed veth topology.
// Generated lines are meant to be valid (unique route keys, gateways on-link); the few the kernel
// still refuses (an exact duplicate rule, an IPv6 gateway another route covers) are dropped at install.

import fc from "fast-check";
import type { Family } from "../../../src/model/address.ts";
import type { Packet } from "../../../src/simulate/types.ts";

/** Devices of the lab namespace: e0/e1 carry addresses, e2 has none (KERNEL-FACTS 5), p0 is e0's peer. */
export const TOPOLOGY = {
  devices: ["e0", "e1", "e2", "p0", "p1", "p2"],
  setup: [
    "link set lo up",
    "link add e0 type veth peer name p0",
    "link add e1 type veth peer name p1",
    "link add e2 type veth peer name p2",
    ...["e0", "e1", "e2", "p0", "p1", "p2"].map((d) => `link set ${d} up`),
    "addr add 192.0.2.1/24 dev e0",
    "addr add 198.51.100.1/24 dev e1",
    "addr add 2001:db8:0:1::1/64 dev e0 nodad",
    "addr add 2001:db8:0:2::1/64 dev e1 nodad",
  ],
  gateways: {
    4: { e0: ["192.0.2.254", "192.0.2.9"], e1: ["198.51.100.254", "198.51.100.7"], e2: ["203.0.113.1"] },
    6: { e0: ["2001:db8:0:1::fe", "2001:db8:0:1::9"], e1: ["2001:db8:0:2::fe"], e2: ["2001:db8:ff::1"] },
  } as Record<Family, Record<string, string[]>>,
  localAddresses: { 4: ["192.0.2.1", "198.51.100.1"], 6: ["2001:db8:0:1::1", "2001:db8:0:2::1"] } as Record<
    Family,
    string[]
  >,
};

const PREFIXES: Record<Family, string[]> = {
  4: [
    "default",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.128/25",
    "10.1.2.3",
    "203.0.113.0/24",
    "203.0.113.0/25",
    "203.0.113.64/26",
    "192.0.2.0/24",
    "192.0.2.128/25",
    "198.51.100.0/24",
    "10.64.0.0/10",
  ],
  6: [
    "default",
    "2001:db8::/32",
    "2001:db8:a::/48",
    "2001:db8:a:1::/64",
    "2001:db8:a:1::5",
    "2001:db8:b::/48",
    "2001:db8:0:1::/64",
    "2001:db8:0:2::/64",
    "2001:db8:a:1:8000::/65",
  ],
};

const HOSTS: Record<Family, string[]> = {
  4: [
    "10.1.2.3",
    "10.1.2.200",
    "10.1.9.9",
    "10.70.0.1",
    "10.200.1.1",
    "203.0.113.5",
    "203.0.113.70",
    "203.0.113.200",
    "192.0.2.50",
    "192.0.2.200",
    "192.0.2.255",
    "198.51.100.20",
    "192.0.2.1",
    "198.51.100.1",
    "100.64.0.1",
  ],
  6: [
    "2001:db8:a:1::5",
    "2001:db8:a:1::6",
    "2001:db8:a:1:8000::1",
    "2001:db8:a:2::1",
    "2001:db8:b::1",
    "2001:db8:c::1",
    "2001:db8:0:1::50",
    "2001:db8:0:2::20",
    "2001:db8:0:1::1",
    "2001:db8:0:2::1",
    "2001:db9::1",
  ],
};

const TABLES = ["100", "101", "102", "main"];
const ROUTE_TABLES = [...TABLES, "default", "local"];

export interface GeneratedState {
  readonly family: Family;
  /** `ip -batch` lines (without `-6`) for rules and routes. */
  readonly lines: readonly string[];
  /** Per-device rp_filter etc.: sysctl path names to values. */
  readonly sysctls: Readonly<Record<string, string>>;
}

const pick = <T>(items: readonly T[]): fc.Arbitrary<T> => fc.constantFrom(...items);
/** `arb` once in `1 + absentWeight` draws, undefined otherwise. */
const maybe = <T>(arb: fc.Arbitrary<T>, absentWeight = 4): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: absentWeight, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });

const portRange = fc
  .tuple(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 0, max: 500 }))
  .map(([a, w]) => (w === 0 ? String(a) : `${a}-${a + w}`));

function ruleArb(family: Family): fc.Arbitrary<(priority: number, later: readonly number[]) => string> {
  return fc
    .record({
      notFlag: fc.integer({ min: 0, max: 7 }).map((n) => n === 0),
      from: maybe(pick(PREFIXES[family].filter((p) => p !== "default")), 3),
      to: maybe(pick(PREFIXES[family].filter((p) => p !== "default")), 3),
      iif: maybe(pick(["e0", "e1", "e2", "p0", "lo"]), 4),
      oif: maybe(pick(["e0", "e1"]), 8),
      fwmark: maybe(
        pick([
          "0x1",
          "0x2",
          "0x100",
          "0x1/0xff",
          "0x100/0x100",
          "0x101/0x1ff",
          "0x0/0xff",
          "0x0/0xffffffff",
          "0x0",
        ]),
        3,
      ),
      tos: family === 4 ? maybe(pick(["0x04", "0x08", "0x10", "0x18", "0x1c"]), 8) : fc.constant(undefined),
      ipproto: maybe(pick(["tcp", "udp"]), 6),
      sport: maybe(portRange, 8),
      dport: maybe(portRange, 6),
      // Rare in IPv6: a uidrange rule makes IPv6 input lookups unmodelled (`ip route get ... iif`
      // matches with an invalid uid), and the fidelity test needs 95% of its cases compared.
      uidrange: maybe(pick(["0-0", "1-1000", "1000-2000"]), family === 4 ? 8 : 40),
      action: fc.oneof(
        { weight: 8, arbitrary: pick(TABLES).map((t) => `lookup ${t}`) },
        { weight: 1, arbitrary: fc.constant("goto") },
        { weight: 1, arbitrary: fc.constant("nop") },
        { weight: 1, arbitrary: pick(["unreachable", "blackhole", "prohibit"]) },
      ),
      suppress: maybe(fc.integer({ min: 0, max: family === 4 ? 32 : 128 }), 5),
      gotoPick: fc.nat(),
    })
    .map((r) => (priority: number, later: readonly number[]): string => {
      const parts = ["rule add"];
      if (r.notFlag) parts.push("not");
      if (r.from !== undefined) parts.push("from", r.from);
      if (r.to !== undefined) parts.push("to", r.to);
      if (r.iif !== undefined) parts.push("iif", r.iif);
      if (r.oif !== undefined) parts.push("oif", r.oif);
      if (r.fwmark !== undefined) parts.push("fwmark", r.fwmark);
      if (r.tos !== undefined) parts.push("tos", r.tos);
      if (r.ipproto !== undefined) parts.push("ipproto", r.ipproto);
      if (r.sport !== undefined && r.ipproto !== undefined) parts.push("sport", r.sport);
      if (r.dport !== undefined && r.ipproto !== undefined) parts.push("dport", r.dport);
      if (r.uidrange !== undefined) parts.push("uidrange", r.uidrange);
      if (r.action === "goto") {
        // A goto target: a later priority that exists, or one that does not (unresolved).
        const target =
          later.length > 0 && r.gotoPick % 4 !== 0
            ? later[r.gotoPick % later.length]
            : priority + 100 + (r.gotoPick % 7);
        parts.push("goto", String(target));
      } else {
        parts.push(r.action);
        if (r.suppress !== undefined && r.action.startsWith("lookup"))
          parts.push("suppress_prefixlength", String(r.suppress));
      }
      parts.push("priority", String(priority));
      return parts.join(" ");
    });
}

interface RouteChoice {
  readonly table: string;
  readonly dst: string;
  readonly metric: number;
  readonly line: string;
}

function routeArb(family: Family): fc.Arbitrary<RouteChoice> {
  return fc
    .record({
      table: fc.oneof({ weight: 6, arbitrary: pick(TABLES) }, { weight: 1, arbitrary: pick(ROUTE_TABLES) }),
      dst: pick(PREFIXES[family]),
      // IPv6 turns metric 0 into 1024; 256 is the kernel's own for connected IPv6 routes.
      metric: family === 4 ? pick([0, 10, 20, 1024]) : pick([10, 20, 1024]),
      kind: fc.oneof(
        { weight: 6, arbitrary: fc.constant("unicast") },
        { weight: 1, arbitrary: pick(["blackhole", "unreachable", "prohibit", "throw"]) },
        { weight: 1, arbitrary: fc.constant("local") },
      ),
      dev: pick(["e0", "e1", "e2"]),
      gw: fc.nat(),
      useGw: fc.boolean(),
    })
    .map((r) => {
      const parts = ["route add"];
      if (r.kind !== "unicast") parts.push(r.kind);
      parts.push(r.dst);
      if (r.kind === "local") {
        parts.push("dev", r.dev === "e2" ? "e0" : r.dev);
      } else if (r.kind === "unicast") {
        const gws = TOPOLOGY.gateways[family][r.dev] ?? [];
        if (r.useGw && gws.length > 0)
          parts.push("via", gws[r.gw % gws.length] as string, "dev", r.dev, "onlink");
        else parts.push("dev", r.dev);
      }
      parts.push("table", r.table, "metric", String(r.metric));
      return { table: r.table, dst: r.dst, metric: r.metric, line: parts.join(" ") };
    });
}

export function stateArb(family: Family): fc.Arbitrary<GeneratedState> {
  return fc
    .record({
      rules: fc.array(ruleArb(family), { minLength: 1, maxLength: 12 }),
      // Sometimes from a narrow range, so that several rules share a priority (kept in list order).
      priorities: fc.oneof(
        {
          weight: 3,
          arbitrary: fc.uniqueArray(fc.integer({ min: 1, max: 32765 }), { minLength: 12, maxLength: 12 }),
        },
        { weight: 1, arbitrary: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 12, maxLength: 12 }) },
      ),
      routes: fc.array(routeArb(family), { minLength: 1, maxLength: 20 }),
      rp: fc.record({
        all: pick([0, 0, 1, 2]),
        e0: pick([0, 1, 2]),
        e1: pick([0, 1, 2]),
        e2: pick([0, 1, 2]),
        p0: pick([0, 1, 2]),
      }),
      srcValidMark: fc.boolean(),
      acceptLocal: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
      sendRedirects: fc.boolean(),
      forwardingE2: fc.boolean(),
      forwarding6: fc.integer({ min: 0, max: 3 }).map((n) => (n === 0 ? "0" : "1")),
    })
    .map((s) => {
      const prios = [...s.priorities].sort((a, b) => a - b).slice(0, s.rules.length);
      const ruleLines = s.rules.map((make, i) =>
        make(
          prios[i] as number,
          prios.slice(i + 1).filter((p) => p > (prios[i] as number)),
        ),
      );
      // The kernel's connected routes already hold these keys.
      const seen = new Set<string>(["main|192.0.2.0/24|0", "main|198.51.100.0/24|0"]);
      const routeLines: string[] = [];
      for (const r of s.routes) {
        const key = `${r.table}|${r.dst}|${r.metric}`;
        if (seen.has(key)) continue;
        seen.add(key);
        routeLines.push(r.line);
      }
      const sysctls: Record<string, string> = {
        "net/ipv4/ip_forward": "1",
        "net/ipv6/conf/all/forwarding": s.forwarding6,
        "net/ipv4/conf/all/rp_filter": String(s.rp.all),
        "net/ipv4/conf/all/src_valid_mark": s.srcValidMark ? "1" : "0",
        "net/ipv4/conf/all/accept_local": s.acceptLocal ? "1" : "0",
        "net/ipv4/conf/all/send_redirects": s.sendRedirects ? "1" : "0",
        "net/ipv4/conf/e0/send_redirects": s.sendRedirects ? "1" : "0",
      };
      for (const dev of ["e0", "e1", "e2", "p0"] as const)
        sysctls[`net/ipv4/conf/${dev}/rp_filter`] = String(s.rp[dev]);
      if (!s.forwardingE2) sysctls["net/ipv4/conf/e2/forwarding"] = "0";
      return { family, lines: [...ruleLines, ...routeLines], sysctls };
    });
}

export function packetArb(family: Family): fc.Arbitrary<Packet> {
  const hosts = HOSTS[family];
  const locals = TOPOLOGY.localAddresses[family];
  return fc
    .record({
      to: pick(hosts),
      fromKind: pick(["none", "local", "foreign"] as const),
      local: pick(locals),
      foreign: pick(hosts),
      iif: maybe(pick(["e0", "e1", "e2", "p0"]), 1),
      oif: family === 4 ? maybe(pick(["e0", "e1"]), 8) : fc.constant(undefined),
      mark: maybe(pick([0x1, 0x2, 0x100, 0x101, 0x1ff]), 2),
      tos:
        family === 4
          ? maybe(pick([0x04, 0x08, 0x10, 0x14, 0x18, 0x1c, 0x20, 0xb8]), 5)
          : fc.constant(undefined),
      ipproto: maybe(pick([6, 17]), 2),
      sport: fc.integer({ min: 1, max: 2600 }),
      dport: fc.integer({ min: 1, max: 2600 }),
      uid: maybe(pick([0, 500, 1500]), 4),
    })
    .map((p) => {
      const input = p.iif !== undefined;
      // Input packets need a source; locally generated ones take none, a local one, or (refused) a foreign one.
      const from = input
        ? p.fromKind === "local"
          ? p.local
          : p.foreign
        : p.fromKind === "none"
          ? undefined
          : p.fromKind === "local"
            ? p.local
            : p.foreign;
      const packet: Record<string, unknown> = { to: p.to };
      if (from !== undefined) packet["from"] = from;
      if (input) packet["iif"] = p.iif;
      else if (p.oif !== undefined) packet["oif"] = p.oif;
      if (p.mark !== undefined) packet["mark"] = p.mark;
      if (p.tos !== undefined) packet["tos"] = p.tos;
      if (p.ipproto !== undefined) {
        packet["ipproto"] = p.ipproto;
        packet["sport"] = p.sport;
        packet["dport"] = p.dport;
      }
      if (!input && p.uid !== undefined) packet["uid"] = p.uid;
      return packet as unknown as Packet;
    });
}

/** The `ip route get` arguments for a packet. */
export function routeGetArgs(p: Packet): string[] {
  const args = ["route", "get", p.to];
  if (p.from !== undefined) args.push("from", p.from);
  if (p.iif !== undefined) args.push("iif", p.iif);
  if (p.oif !== undefined) args.push("oif", p.oif);
  if (p.mark !== undefined) args.push("mark", `0x${p.mark.toString(16)}`);
  if (p.tos !== undefined) args.push("tos", `0x${p.tos.toString(16)}`);
  if (p.ipproto !== undefined)
    args.push("ipproto", p.ipproto === 6 ? "tcp" : p.ipproto === 17 ? "udp" : String(p.ipproto));
  if (p.sport !== undefined) args.push("sport", String(p.sport));
  if (p.dport !== undefined) args.push("dport", String(p.dport));
  if (p.uid !== undefined) args.push("uid", String(p.uid));
  return args;
}
