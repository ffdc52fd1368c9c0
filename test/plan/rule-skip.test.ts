// The skip rule over symroute's fwmark rules (issue 15): where it goes in the band, when it is
// added, what the kernel would do with a packet with and without a mark (simulator), a foreign rule
// it would jump over (conflict), and apply/delete on the in-memory node.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { Config } from "../../src/config/schema.ts";
import { createEngine } from "../../src/engine/engine.ts";
import type { Rule } from "../../src/model/state.ts";
import {
  bandLayout,
  computeDesired,
  FWMARK_GROUPS_FROM,
  SKIP_FROM_FWMARK_RULES,
} from "../../src/plan/desired.ts";
import { diffRouting } from "../../src/plan/diff.ts";
import { ruleArgs } from "../../src/render/ip.ts";
import { compileRoutingState } from "../../src/simulate/compile.ts";
import { formatTrace } from "../../src/simulate/format.ts";
import { simulatorSysctls, tracePacket } from "../../src/simulate/trace.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { configFrom as config } from "../support/config.ts";
import { desiredOnArticleNode, freshOwnership } from "../support/desired.ts";

/** `count` connmark networks on ext0 (1.2.N.0/24 via 1.2.N.1), and `extra` YAML at the top. */
function networks(count: number, extra = ""): Config {
  const lines = Array.from(
    { length: count },
    (_, i) => `  - { name: n${i}, addresses: [10.${i}.3.0/24], interface: ext0, gateway: 10.${i}.3.1 }`,
  );
  return config(`${extra}\nnetworks:\n${lines.join("\n")}\n`);
}

test("the band holds skip, fwmark rules, nop, exemptions and source rules in that order", () => {
  assert.deepEqual(bandLayout({ from: 1000, to: 1999 }), {
    skip: 1000,
    fwmarkRules: 1001,
    nop: 1002,
    exemptions: 1003,
    sourceRules: 1004,
    groups: 1005,
    last: 1999,
  });
  // Too narrow for five priorities: no skip, the layout before it.
  assert.deepEqual(bandLayout({ from: 1000, to: 1003 }), {
    skip: undefined,
    fwmarkRules: 1001,
    nop: undefined,
    exemptions: 1000,
    sourceRules: 1001,
    groups: undefined,
    last: 1003,
  });
});

test(`from ${SKIP_FROM_FWMARK_RULES} fwmark rules a skip rule jumps to a nop past them; below, none and why`, () => {
  const many = desiredOnArticleNode(networks(SKIP_FROM_FWMARK_RULES));
  const skip = many.rules.filter((r) => r.action === "goto");
  assert.deepEqual(skip, [
    { family: 4, priority: 1000, fwmark: 0, fwmask: 0xff, action: "goto", goto: 1002, protocol: 201 },
  ]);
  assert.deepEqual(
    many.rules.filter((r) => r.action === "nop"),
    [{ family: 4, priority: 1002, action: "nop", protocol: 201 }],
  );
  assert.ok(
    many.rules
      .filter((r) => r.fwmark !== undefined && r.action === "lookup")
      .every((r) => r.priority === 1001),
  );
  assert.equal(many.ruleSkips?.[0]?.skip?.goto, 1002);
  assert.equal(ruleArgs(skip[0] as Rule).join(" "), "priority 1000 fwmark 0x0/0xff goto 1002 proto 201");

  const few = desiredOnArticleNode(networks(SKIP_FROM_FWMARK_RULES - 1));
  assert.ok(!few.rules.some((r) => r.action === "goto" || r.action === "nop"));
  assert.equal(few.ruleSkips?.[0]?.skip, undefined);
  assert.match(few.ruleSkips?.[0]?.reason ?? "", /as many rules as it saves/);

  const narrow = desiredOnArticleNode(networks(5, "rulePriorities: {from: 100, to: 103}"));
  assert.ok(!narrow.rules.some((r) => r.action === "goto" || r.action === "nop"));
  assert.match(narrow.ruleSkips?.[0]?.reason ?? "", /fewer than 5 priorities/);

  // No fwmark rule at all: nothing to say.
  assert.equal(desiredOnArticleNode(config("networks: []")).ruleSkips, undefined);
});

test("with every mark bit symroute's, the skip says so explicitly: `fwmark 0` alone would match every packet", () => {
  const d = desiredOnArticleNode(networks(3, "marks: {mask: 0xffffffff, avoid: []}"));
  const skip = d.rules.find((r) => r.action === "goto") as Rule;
  // The kernel lists an all-ones mask as no mask: the model leaves it out, the batch line writes it.
  assert.equal(skip.fwmask, undefined);
  assert.equal(ruleArgs(skip).join(" "), "priority 1000 fwmark 0x0/0xffffffff goto 1002 proto 201");
  assert.ok(d.rules.filter((r) => r.fwmark !== undefined).every((r) => r.fwmask === undefined));
});

test("a method source network's rules come after the nop, where the skip cannot take a packet past them", () => {
  const d = desiredOnArticleNode(
    config(`
podCIDRs: [10.112.0.0/12]
networks:
  - { name: a, addresses: [10.0.3.0/24], interface: ext0, gateway: 10.0.3.1 }
  - { name: b, addresses: [10.1.3.0/24], interface: ext0, gateway: 10.1.3.1 }
  - { name: c, addresses: [10.2.3.0/24], interface: ext0, gateway: 10.2.3.1 }
  - { name: ipvs, addresses: [10.3.3.0/24], interface: ext0, gateway: 10.3.3.1, method: source }
`),
  );
  const base = articleNode();
  // IPVS puts the LB address on the node: its replies are locally generated from it.
  const node = {
    ...base,
    addresses: [...base.addresses, { ifname: "ext0", family: 4 as const, local: "10.3.3.4", prefixlen: 32 }],
    rules: [...base.rules, ...d.rules],
    routes: [...base.routes, ...d.routes],
  };
  const index = compileRoutingState(node);
  // A reply of the source network (unmarked, from its pool): skip, nop, then its rule.
  const reply = tracePacket(index, { from: "10.3.3.4", to: "198.51.100.7" }, { explain: true });
  assert.equal(reply.table, 20003, formatTrace(reply).join("\n"));
  assert.equal(reply.rule?.priority, 1004);
  // To a pod it stays in main (the exemption, also after the nop).
  const toPod = tracePacket(index, { from: "10.3.3.4", to: "10.112.0.5" }, { explain: true });
  assert.equal(toPod.rule?.priority, 1003, formatTrace(toPod).join("\n"));
});

test("simulator: an unmarked packet jumps over the fwmark rules, a marked one is routed by its table", () => {
  const node = nodeWith(desiredOnArticleNode(networks(4)));
  const index = compileRoutingState(node);
  // Forwarded from a pod behind eth0 (on its subnet, so rp_filter passes it).
  const unmarked = tracePacket(
    index,
    { from: "192.168.1.50", iif: "eth0", to: "198.51.100.7" },
    { explain: true },
  );
  const steps = formatTrace(unmarked).join("\n");
  assert.equal(unmarked.table, 254, steps);
  // Not one fwmark rule was tried: the walk went from the skip to the nop.
  assert.ok(!(unmarked.steps ?? []).some((s) => s.stage === "rule" && s.priority === 1001), steps);
  assert.ok(
    (unmarked.steps ?? []).some((s) => s.stage === "rule" && s.priority === 1002 && s.matched === true),
    steps,
  );
  // A mark outside symroute's mask is still "unmarked" for it.
  assert.equal(tracePacket(index, { to: "198.51.100.7", mark: 0x4000 }).table, 254);
  const marked = tracePacket(
    index,
    { from: "192.168.1.50", iif: "eth0", to: "198.51.100.7", mark: 0x3 },
    { explain: true },
  );
  assert.equal(marked.table, 20002, formatTrace(marked).join("\n"));
  assert.equal(marked.gateway, "10.2.3.1");
});

test("a foreign rule between the skip and its nop that unmarked packets reach is a conflict that says so", () => {
  const cfg = networks(3);
  const d = desiredOnArticleNode(cfg);
  const foreign: Rule = { family: 4, priority: 1001, to: "198.51.100.0/24", action: "lookup", table: 7 };
  const node = { ...articleNode(), rules: [...articleNode().rules, ...d.rules, foreign] };
  const result = diffRouting(d, node, freshOwnership(cfg));
  assert.equal(result.conflicts.length, 1, JSON.stringify(result));
  assert.match(result.conflicts[0]?.object ?? "", /priority 1001 to 198\.51\.100\.0\/24 lookup 7/);
  assert.match(
    result.conflicts[0]?.reason ?? "",
    /skip rule priority 1000 fwmark 0x0\/0xff goto 1002.*jump over it/,
  );
  // One that only marked packets reach is not jumped over: the skip lets those through.
  const marked: Rule = { family: 4, priority: 1001, fwmark: 0x9, fwmask: 0xff, action: "lookup", table: 7 };
  const other = diffRouting(
    d,
    { ...node, rules: [...articleNode().rules, ...d.rules, marked] },
    freshOwnership(cfg),
  );
  assert.ok(!other.conflicts.some((c) => /jump over it/.test(c.reason)), JSON.stringify(other));
  // At the nop's priority (after the fwmark rules, nothing of symroute's behind it): a notice.
  const atNop: Rule = { family: 4, priority: 1002, to: "198.51.100.0/24", action: "lookup", table: 7 };
  const notice = diffRouting(
    d,
    { ...node, rules: [...articleNode().rules, ...d.rules, atNop] },
    freshOwnership(cfg),
  );
  assert.deepEqual(notice.conflicts, []);
  assert.match(notice.notices.join("\n"), /priority 1002 lookup 7 is not symroute's/);
});

test("apply adds the skip and nop (in sync after), and delete returns the node's rules exactly", async () => {
  const kernel = new FakeKernel(articleNode());
  const engine = createEngine({ kernel, store: new MemoryStore() });
  const before = structuredClone(kernel.state.rules);
  const cfg = networks(3, "podCIDRs: [10.112.0.0/12]");
  await engine.apply(cfg);
  const rules = kernel.state.rules.filter((r) => r.protocol === 201).map((r) => ruleArgs(r).join(" "));
  assert.ok(rules.includes("priority 1000 fwmark 0x0/0xff goto 1002 proto 201"), rules.join("\n"));
  assert.ok(rules.includes("priority 1002 nop proto 201"), rules.join("\n"));
  assert.equal((await engine.plan(cfg)).inSync, true);
  // Down to two networks: the skip and nop go, the fwmark rules stay where they were.
  await engine.apply(networks(2, "podCIDRs: [10.112.0.0/12]"));
  assert.ok(!kernel.state.rules.some((r) => r.action === "goto" || r.action === "nop"));
  assert.deepEqual(
    kernel.state.rules.filter((r) => r.fwmark !== undefined).map((r) => r.priority),
    [1001, 1001],
  );
  await engine.apply(cfg);
  await engine.remove();
  assert.deepEqual(kernel.state.rules, before);
});

test("the in-memory node refuses a backward goto and keeps a goto to a missing priority, as the kernel does", async () => {
  const kernel = new FakeKernel(articleNode());
  await assert.rejects(kernel.runIpBatch(4, ["rule add priority 1000 goto 1000"]), /Backward goto/);
  await kernel.runIpBatch(4, ["rule add priority 1000 fwmark 0x0/0xff goto 1002 proto 201"]);
  assert.ok(kernel.state.rules.some((r) => r.action === "goto" && r.goto === 1002));
});

test("a skip rule refused by the kernel rolls the apply back; a nop deleted by hand is drift that apply repairs", async () => {
  const kernel = new FakeKernel(articleNode());
  const engine = createEngine({ kernel, store: new MemoryStore() });
  const initial = structuredClone(kernel.state);
  const cfg = networks(3);
  kernel.faults.ipLine = /goto 1002/;
  await assert.rejects(engine.apply(cfg), /rolled back/);
  assert.deepEqual(kernel.state.rules, initial.rules);
  assert.deepEqual(kernel.state.routes, initial.routes);

  kernel.faults = {};
  await engine.apply(cfg);
  await kernel.runIpBatch(4, ["rule del priority 1002 nop proto 201"]);
  const drift = await engine.plan(cfg);
  assert.deepEqual(
    drift.changes.map((c) => (c.kind === "rule" ? `${c.action} ${ruleArgs(c.rule).join(" ")}` : c.kind)),
    ["add priority 1002 nop proto 201"],
  );
  await engine.apply(cfg);
  assert.equal((await engine.plan(cfg)).inSync, true);
});

/** The article's node with `d`'s rules and routes, and the sysctls the simulator reads for input packets. */
/** `d`'s fwmark rules in one list at 1001 behind the skip at 1000, no groups. */
function assertOneList(d: ReturnType<typeof desiredOnArticleNode>): void {
  assert.ok(
    d.rules.filter((r) => r.action === "lookup" && r.fwmark !== undefined).every((r) => r.priority === 1001),
  );
  assert.deepEqual(d.ruleSkips?.[0]?.skip, { priority: 1000, goto: 1002 });
  assert.equal(d.ruleSkips?.[0]?.groups, undefined);
}

/** The article's node with `d`'s rules and routes, and the sysctls the simulator reads for input packets. */
function nodeWith(d: ReturnType<typeof desiredOnArticleNode>) {
  const base = articleNode();
  return {
    ...base,
    // The node's values, the kernel's defaults for the rest.
    sysctls: {
      ...Object.fromEntries(
        simulatorSysctls(["eth0", "ext0"]).map((name) => [name, name.endsWith("forwarding") ? "1" : "0"]),
      ),
      ...base.sysctls,
    },
    rules: [...base.rules, ...d.rules],
    routes: [...base.routes, ...d.routes],
  };
}

test(`from ${FWMARK_GROUPS_FROM} fwmark rules they go in groups of 32 marks, each behind one goto`, () => {
  const d = desiredOnArticleNode(networks(70));
  const lines = (action: string): string[] =>
    d.rules.filter((r) => r.action === action).map((r) => ruleArgs(r).join(" "));
  // Marks 0x1-0x46 under the mask 0xff: groups 0 (0x1-0x1f), 1 (0x20-0x3f), 2 (0x40-0x46).
  assert.deepEqual(lines("goto"), [
    "priority 1000 fwmark 0x0/0xff goto 1009 proto 201",
    "priority 1001 fwmark 0x0/0xe0 goto 1006 proto 201",
    "priority 1001 fwmark 0x20/0xe0 goto 1007 proto 201",
    "priority 1001 fwmark 0x40/0xe0 goto 1008 proto 201",
  ]);
  // No method source rules: the skip goes straight to the nop after the groups.
  assert.deepEqual(lines("nop"), ["priority 1009 nop proto 201"]);
  const byPriority = new Map<number, number>();
  for (const r of d.rules.filter((r) => r.action === "lookup" && r.fwmark !== undefined))
    byPriority.set(r.priority, (byPriority.get(r.priority) ?? 0) + 1);
  assert.deepEqual(
    [...byPriority.entries()],
    [
      [1006, 31],
      [1007, 32],
      [1008, 7],
    ],
  );
  assert.deepEqual(d.ruleSkips?.[0]?.skip, { priority: 1000, goto: 1009 });
  assert.deepEqual(d.ruleSkips?.[0]?.groups, { dispatch: 1001, groups: 3, from: 1006, to: 1008, nop: 1009 });
  assert.match(d.ruleSkips?.[0]?.reason ?? "", /one goto per group of 32 mark values at 1001/);

  // One fewer than the threshold: one list at 1001, as before.
  const flat = desiredOnArticleNode(networks(FWMARK_GROUPS_FROM - 1));
  assert.ok(
    flat.rules
      .filter((r) => r.action === "lookup" && r.fwmark !== undefined)
      .every((r) => r.priority === 1001),
  );
  assert.equal(flat.ruleSkips?.[0]?.groups, undefined);
});

test("simulator: in groups, every network's replies take its table, trying its group's goto and rules only", () => {
  const d = desiredOnArticleNode(networks(70));
  const index = compileRoutingState(nodeWith(d));
  for (let i = 0; i < 70; i++) {
    const trace = tracePacket(
      index,
      { from: "192.168.1.50", iif: "eth0", to: "198.51.100.7", mark: i + 1 },
      { explain: true },
    );
    assert.equal(trace.table, 20000 + i, formatTrace(trace).join("\n"));
    const tried = (trace.steps ?? []).filter((s) => s.stage === "rule").length;
    // The local rule, the skip, at most 3 gotos, at most 32 rules of its group.
    assert.ok(tried <= 2 + 3 + 32, `${i}: ${tried} rules\n${formatTrace(trace).join("\n")}`);
  }
  const unmarked = tracePacket(
    index,
    { from: "192.168.1.50", iif: "eth0", to: "198.51.100.7" },
    { explain: true },
  );
  assert.equal(unmarked.table, 254);
  assert.ok(
    !(unmarked.steps ?? []).some(
      (s) => s.stage === "rule" && (s.priority ?? 0) > 1000 && (s.priority ?? 0) < 1009,
    ),
    formatTrace(unmarked).join("\n"),
  );
  // A mark no network holds (a removed network's open connections): no rule of symroute's, main.
  assert.equal(
    tracePacket(index, { from: "192.168.1.50", iif: "eth0", to: "198.51.100.7", mark: 0x50 }).table,
    254,
  );
  assert.equal(
    tracePacket(index, { from: "192.168.1.50", iif: "eth0", to: "198.51.100.7", mark: 0x45 }).table,
    20068,
  );
});

test("in groups with method source's rules: the skip lands on the first nop, a second skip takes unmarked packets past the groups", () => {
  const lines = Array.from(
    { length: 70 },
    (_, i) => `  - { name: n${i}, addresses: [10.${i}.3.0/24], interface: ext0, gateway: 10.${i}.3.1 }`,
  );
  const d = desiredOnArticleNode(
    config(`podCIDRs: [10.112.0.0/12]
networks:
${lines.join("\n")}
  - { name: ipvs, addresses: [10.200.3.0/24], interface: ext0, gateway: 10.200.3.1, method: source }
`),
  );
  const gotos = d.rules.filter((r) => r.action !== "lookup").map((r) => ruleArgs(r).join(" "));
  assert.ok(gotos.includes("priority 1000 fwmark 0x0/0xff goto 1002 proto 201"), gotos.join("\n"));
  assert.ok(gotos.includes("priority 1002 nop proto 201"), gotos.join("\n"));
  assert.ok(gotos.includes("priority 1005 fwmark 0x0/0xff goto 1009 proto 201"), gotos.join("\n"));
  assert.ok(gotos.includes("priority 1009 nop proto 201"), gotos.join("\n"));
  const base = nodeWith(d);
  const node = {
    ...base,
    addresses: [
      ...base.addresses,
      { ifname: "ext0", family: 4 as const, local: "10.200.3.4", prefixlen: 32 },
    ],
  };
  const index = compileRoutingState(node);
  const reply = tracePacket(index, { from: "10.200.3.4", to: "198.51.100.7" }, { explain: true });
  assert.equal(reply.rule?.priority, 1004, formatTrace(reply).join("\n"));
  const toPod = tracePacket(index, { from: "10.200.3.4", to: "10.112.0.5" }, { explain: true });
  assert.equal(toPod.rule?.priority, 1003, formatTrace(toPod).join("\n"));
  const marked = tracePacket(index, { from: "192.168.1.50", iif: "eth0", to: "198.51.100.7", mark: 0x46 });
  assert.equal(marked.table, 20069);
});

test("a band without room for the groups keeps one list, and plan says why", () => {
  // Groups 0-2 and their nop need 1001-1009.
  const d = desiredOnArticleNode(networks(70, "rulePriorities: {from: 1000, to: 1008}"));
  assertOneList(d);
  assert.match(
    d.ruleSkips?.[0]?.reason ?? "",
    /no room in rulePriorities for groups.*1001-1009.*ends at 1008/,
  );
  const wide = desiredOnArticleNode(networks(70, "rulePriorities: {from: 1000, to: 1009}"));
  assert.equal(wide.ruleSkips?.[0]?.groups?.nop, 1009);
});

test("apply moves the fwmark rules into groups and back (in sync after each), and delete returns the node's rules exactly", async () => {
  const kernel = new FakeKernel(articleNode());
  const engine = createEngine({ kernel, store: new MemoryStore() });
  const before = structuredClone(kernel.state.rules);
  const few = networks(FWMARK_GROUPS_FROM - 1);
  const many = networks(70);
  await engine.apply(few);
  await engine.apply(many);
  assert.equal((await engine.plan(many)).inSync, true);
  const marked = kernel.state.rules.filter((r) => r.action === "lookup" && r.fwmark !== undefined);
  assert.equal(marked.length, 70);
  assert.ok(marked.every((r) => r.priority >= 1006 && r.priority <= 1008));
  await engine.apply(few);
  assert.equal((await engine.plan(few)).inSync, true);
  assert.ok(
    kernel.state.rules
      .filter((r) => r.action === "lookup" && r.fwmark !== undefined)
      .every((r) => r.priority === 1001),
  );
  await engine.apply(many);
  await engine.remove();
  assert.deepEqual(kernel.state.rules, before);
});

test("a foreign rule where the groups would go keeps one list (it is not jumped over), and plan says why", () => {
  const cfg = networks(70);
  // Another tool's rule at 1007, reached today by every packet without a mark (the skip lands on
  // 1002): groups at 1006-1008 behind a skip to 1009 would take those packets past it.
  const foreign: Rule = { family: 4, priority: 1007, to: "198.51.100.0/24", action: "lookup", table: 7 };
  const node = { ...articleNode(), rules: [...articleNode().rules, foreign] };
  const d = computeDesired({
    config: cfg,
    node,
    saved: undefined,
    firewall: "nftables",
    kubeProxyMode: "iptables",
  });
  assertOneList(d);
  assert.match(
    d.ruleSkips?.[0]?.reason ?? "",
    /rule priority 1007 lookup 7 is not symroute's and sits where they would go \(1002-1008\)/,
  );
  const result = diffRouting(d, { ...node, rules: [...node.rules, ...d.rules] }, freshOwnership(cfg));
  assert.deepEqual(result.conflicts, []);
  // At the groups' nop or after it, or in the other family, or symroute's own: the groups as
  // without it.
  for (const rule of [
    { ...foreign, priority: 1009 },
    { ...foreign, priority: 1010 },
    { family: 6 as const, priority: 1007, to: "2001:db8::/64", action: "lookup" as const, table: 7 },
    { ...foreign, fwmark: 0x21, fwmask: 0xff, table: 20032, protocol: 201 },
  ]) {
    const other = computeDesired({
      config: cfg,
      node: { ...articleNode(), rules: [...articleNode().rules, rule] },
      saved: undefined,
      firewall: "nftables",
      kubeProxyMode: "iptables",
    });
    assert.equal(other.ruleSkips?.[0]?.groups?.nop, 1009, JSON.stringify(rule));
  }
});

test("with method source's rules, a foreign rule among them does not stop the groups; one after the second skip does", () => {
  const cfg = config(`networks:
${Array.from({ length: 70 }, (_, i) => `  - { name: n${i}, addresses: [10.${i}.3.0/24], interface: ext0, gateway: 10.${i}.3.1 }`).join("\n")}
  - { name: s, addresses: [10.200.3.0/24], interface: ext0, gateway: 10.200.3.1, method: source }
`);
  const desiredWith = (priority: number) =>
    computeDesired({
      config: cfg,
      node: {
        ...articleNode(),
        rules: [
          ...articleNode().rules,
          { family: 4, priority, to: "198.51.100.0/24", action: "lookup", table: 7 },
        ],
      },
      saved: undefined,
      firewall: "nftables",
      kubeProxyMode: "iptables",
    });
  // 1003: reached as before (the skip lands on 1002, the second skip is at 1005).
  assert.equal(desiredWith(1003).ruleSkips?.[0]?.groups?.nop, 1009);
  assert.equal(desiredWith(1006).ruleSkips?.[0]?.groups, undefined);
  assert.match(desiredWith(1006).ruleSkips?.[0]?.reason ?? "", /sits where they would go \(1006-1008\)/);
});
