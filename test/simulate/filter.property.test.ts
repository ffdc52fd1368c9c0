// The candidate filter (bitsets per selector kind) must never change a verdict: the fast walk and
// the explaining walk (which tries every rule) agree on random states of up to 150 rules.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Family } from "../../src/model/address.ts";
import type { NodeState, Route, Rule, RuleAction } from "../../src/model/state.ts";
import { compileRoutingState } from "../../src/simulate/compile.ts";
import { tracePacket } from "../../src/simulate/trace.ts";
import type { Packet } from "../../src/simulate/types.ts";

const V4_PREFIXES = [
  "10.0.0.0/8",
  "10.1.0.0/16",
  "10.1.2.0/24",
  "10.1.2.3",
  "192.0.2.0/24",
  "203.0.113.0/25",
  "0.0.0.0/1",
];
const V4_HOSTS = [
  "10.1.2.3",
  "10.1.9.9",
  "10.200.0.1",
  "192.0.2.7",
  "203.0.113.5",
  "203.0.113.200",
  "192.0.2.1",
];
const DEVS = ["a0", "b0", "lo"];
/** Mostly absent, so that rules match often enough to matter. */
const opt = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });

const ruleArb = (family: Family): fc.Arbitrary<Omit<Rule, "priority">> =>
  fc
    .record({
      not: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
      from: opt(fc.constantFrom(...V4_PREFIXES)),
      to: opt(fc.constantFrom(...V4_PREFIXES)),
      iif: opt(fc.constantFrom(...DEVS)),
      oif: opt(fc.constantFrom("a0", "b0")),
      mark: opt(
        fc.tuple(fc.constantFrom(0, 1, 2, 0x100, 0x101), fc.constantFrom(undefined, 0xff, 0x100, 0x1ff)),
      ),
      tos: opt(fc.constantFrom(0x04, 0x08, 0x10)),
      ipproto: opt(fc.constantFrom(6, 17)),
      dport: opt(fc.constantFrom({ start: 1, end: 100 }, { start: 80, end: 80 })),
      uid: opt(fc.constantFrom({ start: 0, end: 0 }, { start: 1000, end: 2000 })),
      action: fc.constantFrom<RuleAction>(
        "lookup",
        "lookup",
        "lookup",
        "goto",
        "nop",
        "blackhole",
        "unreachable",
        "prohibit",
      ),
      table: fc.constantFrom(100, 101, 102, 254),
      suppress: opt(fc.integer({ min: 0, max: 32 })),
      gotoOffset: fc.integer({ min: 1, max: 40 }),
    })
    .map((r) => {
      const rule: Record<string, unknown> = { family, action: r.action };
      if (r.not) rule["not"] = true;
      if (r.from !== undefined) rule["from"] = r.from;
      if (r.to !== undefined) rule["to"] = r.to;
      if (r.iif !== undefined) rule["iif"] = r.iif;
      if (r.oif !== undefined) rule["oif"] = r.oif;
      if (r.mark !== undefined) {
        rule["fwmark"] = r.mark[0];
        if (r.mark[1] !== undefined) rule["fwmask"] = r.mark[1];
      }
      if (r.tos !== undefined) rule["tos"] = r.tos;
      if (r.ipproto !== undefined) rule["ipproto"] = r.ipproto;
      if (r.dport !== undefined) rule["dport"] = r.dport;
      if (r.uid !== undefined) rule["uidrange"] = r.uid;
      if (r.action === "lookup") {
        rule["table"] = r.table;
        if (r.suppress !== undefined) rule["suppressPrefixlength"] = r.suppress;
      }
      if (r.action === "goto") rule["goto"] = -r.gotoOffset; // made absolute below
      return rule as unknown as Omit<Rule, "priority">;
    });

const routeArb: fc.Arbitrary<Route> = fc
  .record({
    table: fc.constantFrom(100, 101, 102, 254),
    dst: fc.constantFrom("default", ...V4_PREFIXES),
    type: fc.constantFrom<Route["type"]>(
      "unicast",
      "unicast",
      "unicast",
      "blackhole",
      "unreachable",
      "prohibit",
      "throw",
      "local",
    ),
    dev: fc.constantFrom("a0", "b0"),
    metric: fc.constantFrom(0, 10, 20),
  })
  .map((r) => ({
    family: 4,
    table: r.table,
    type: r.type,
    dst: r.dst,
    metric: r.metric,
    ...(r.type === "unicast" || r.type === "local" ? { dev: r.dev } : {}),
  }));

const stateArb: fc.Arbitrary<NodeState> = fc
  .record({
    rules: fc.array(ruleArb(4), { minLength: 0, maxLength: 150 }),
    routes: fc.array(routeArb, { minLength: 1, maxLength: 40 }),
    priorities: fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 150, maxLength: 150 }),
  })
  .map(({ rules, routes, priorities }) => {
    const prios = priorities.slice(0, rules.length).sort((a, b) => a - b);
    const placed: Rule[] = rules.map((r, i) => {
      const priority = prios[i] as number;
      // A goto to a later priority (existing or not), never backwards (the kernel refuses those).
      const extra = r.action === "goto" ? { goto: priority - (r.goto ?? 0) } : {};
      return { ...r, ...extra, priority } as Rule;
    });
    return {
      links: [
        { ifname: "lo", ifindex: 1, up: true },
        { ifname: "a0", ifindex: 2, up: true },
        { ifname: "b0", ifindex: 3, up: true },
      ],
      addresses: [{ ifname: "a0", family: 4 as const, local: "192.0.2.1", prefixlen: 24 }],
      rules: [
        { family: 4 as const, priority: 0, action: "lookup" as const, table: 255 },
        ...placed,
        { family: 4 as const, priority: 32766, action: "lookup" as const, table: 254 },
      ],
      routes: [
        { family: 4 as const, table: 255, type: "local" as const, dst: "192.0.2.1", dev: "a0", protocol: 2 },
        ...routes,
      ],
      sysctls: Object.fromEntries(
        ["all", "a0", "b0", "lo"].flatMap((d) => [
          [`net/ipv4/conf/${d}/rp_filter`, d === "a0" ? "1" : "2"],
          [`net/ipv4/conf/${d}/accept_local`, "0"],
          [`net/ipv4/conf/${d}/src_valid_mark`, d === "all" ? "1" : "0"],
          [`net/ipv4/conf/${d}/send_redirects`, "1"],
          [`net/ipv4/conf/${d}/forwarding`, "1"],
          [`net/ipv4/conf/${d}/bc_forwarding`, "0"],
        ]),
      ),
      firewall: [],
    };
  });

const packetArb: fc.Arbitrary<Packet> = fc
  .record({
    to: fc.constantFrom(...V4_HOSTS),
    from: opt(fc.constantFrom(...V4_HOSTS)),
    iif: opt(fc.constantFrom("a0", "b0")),
    oif: opt(fc.constantFrom("a0", "b0")),
    mark: opt(fc.constantFrom(0, 1, 2, 0x100, 0x101, 0x1ff)),
    tos: opt(fc.constantFrom(0x04, 0x08, 0x10, 0x1c)),
    ipproto: opt(fc.constantFrom(6, 17)),
    dport: opt(fc.constantFrom(22, 80, 443)),
    uid: opt(fc.constantFrom(0, 1500)),
  })
  .map((p) => {
    const packet: Record<string, unknown> = { to: p.to };
    for (const [k, v] of Object.entries(p)) if (v !== undefined && k !== "to") packet[k] = v;
    if (packet["iif"] !== undefined) {
      delete packet["oif"];
      packet["from"] ??= "203.0.113.5";
    }
    return packet as unknown as Packet;
  });

test("the candidate filter never changes a verdict (fast walk = explaining walk)", () => {
  fc.assert(
    fc.property(stateArb, fc.array(packetArb, { minLength: 1, maxLength: 20 }), (state, packets) => {
      const index = compileRoutingState(state);
      for (const packet of packets) {
        const fast = tracePacket(index, packet);
        const slow = tracePacket(index, packet, { explain: true });
        const view = (t: typeof fast) => ({
          result: t.result,
          table: t.table,
          dev: t.dev,
          gateway: t.gateway,
          errno: t.errno,
          rule: t.rule?.priority,
          rp: t.rpFilter?.accepted,
        });
        assert.deepEqual(view(fast), view(slow), JSON.stringify(packet));
      }
    }),
    { numRuns: 300 },
  );
});
