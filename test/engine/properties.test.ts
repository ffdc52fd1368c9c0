// Properties of the whole pipeline on generated configs and nodes (in memory):
// apply then observe equals desired (the next plan is empty), a second apply changes nothing,
// every other interface keeps its effective rp_filter, and delete restores the node exactly.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { validateConfigObject } from "../../src/config/index.ts";
import { createEngine } from "../../src/engine/engine.ts";
import type { NodeState } from "../../src/model/state.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { networkArb } from "../support/network-arb.ts";

const RUNS = Number(process.env["SYMROUTE_PROPERTY_RUNS"] ?? 150);
const EXTERNAL = ["ext0", "ext1", "ext2"];

const sysctlValue = fc.constantFrom("0", "1", "2");

const scenarioArb = fc
  .record({
    count: fc.integer({ min: 1, max: 5 }),
    firewall: fc.constantFrom("nftables", "iptables"),
    all: sysctlValue,
    dflt: sysctlValue,
    eth0: sysctlValue,
    exts: fc.array(sysctlValue, { minLength: 3, maxLength: 3 }),
    pods: fc.boolean(),
  })
  .chain((s) =>
    fc.tuple(fc.constant(s), fc.tuple(...Array.from({ length: s.count }, (_, i) => networkArb(i, EXTERNAL)))),
  );

function nodeFor(s: { all: string; dflt: string; eth0: string; exts: string[] }): NodeState {
  const base = articleNode();
  const links = [
    ...base.links.filter((l) => l.ifname !== "ext0"),
    ...EXTERNAL.map((ifname, k) => ({ ifname, ifindex: 10 + k, up: true, kind: "veth" })),
  ];
  const sysctls: Record<string, string> = {
    ...base.sysctls,
    "net/ipv4/conf/all/rp_filter": s.all,
    "net/ipv4/conf/default/rp_filter": s.dflt,
    "net/ipv4/conf/eth0/rp_filter": s.eth0,
  };
  EXTERNAL.forEach((ifname, k) => (sysctls[`net/ipv4/conf/${ifname}/rp_filter`] = s.exts[k] ?? "0"));
  return { ...base, links, sysctls };
}

/** The VLAN links the apply created (on the node now, not before). */
const createdVlans = (kernel: FakeKernel, initial: NodeState): string[] =>
  kernel.state.links.flatMap((l) => (initial.links.some((i) => i.ifname === l.ifname) ? [] : [l.ifname]));

const effective = (node: NodeState, ifname: string): number =>
  Math.max(
    Number(node.sysctls["net/ipv4/conf/all/rp_filter"]),
    Number(node.sysctls[`net/ipv4/conf/${ifname}/rp_filter`]),
  );

test("apply converges, is idempotent, keeps other interfaces' rp_filter, and delete restores the node", async (t) => {
  let executed = 0;
  await fc.assert(
    fc.asyncProperty(scenarioArb, async ([s, networks]) => {
      executed++;
      const parsed = validateConfigObject({
        ...(s.pods ? { podCIDRs: ["10.112.0.0/12", "fd00:112::/56"] } : {}),
        firewall: s.firewall,
        networks,
      });
      if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
      const config = parsed.config;
      const initial = nodeFor(s);
      const kernel = new FakeKernel(initial);
      const engine = createEngine({ kernel, store: new MemoryStore() });

      const applied = await engine.apply(config);
      const plan = await engine.plan(config);
      assert.deepEqual(plan.changes, [], "the plan after an apply is empty");
      assert.equal((await engine.apply(config)).applied, false);

      const external = new Set(
        applied.networks.filter((n) => n.method === "connmark" && n.family === 4).map((n) => n.interface),
      );
      for (const ifname of ["lo", "eth0", ...EXTERNAL, ...createdVlans(kernel, initial)]) {
        if (external.has(ifname))
          assert.equal(effective(kernel.state, ifname), 0, `${ifname} accepts replies' requests`);
        else
          assert.equal(
            effective(kernel.state, ifname),
            // A VLAN symroute made keeps what a new link would have had: conf.default's value.
            effective(initial, initial.links.some((l) => l.ifname === ifname) ? ifname : "default"),
            `${ifname} keeps its rp_filter`,
          );
      }

      await engine.remove();
      assert.deepEqual(kernel.state.routes, initial.routes);
      assert.deepEqual(kernel.state.rules, initial.rules);
      assert.deepEqual(kernel.state.sysctls, initial.sysctls);
      assert.deepEqual(
        kernel.state.firewall.flatMap((f) => f.ruleKeys),
        [],
      );
    }),
    { numRuns: RUNS },
  );
  t.diagnostic(`${executed} generated scenarios`);
});

test("a change from one config to another converges, and delete then restores the node", async (t) => {
  let executed = 0;
  const configOf = (s: { firewall: string; pods: boolean }, networks: unknown[]) => {
    const parsed = validateConfigObject({
      ...(s.pods ? { podCIDRs: ["10.112.0.0/12", "fd00:112::/56"] } : {}),
      firewall: s.firewall,
      networks,
    });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
    return parsed.config;
  };
  await fc.assert(
    fc.asyncProperty(scenarioArb, scenarioArb, async ([s, before], [, after]) => {
      executed++;
      const initial = nodeFor(s);
      const kernel = new FakeKernel(initial);
      const engine = createEngine({ kernel, store: new MemoryStore() });
      await engine.apply(configOf(s, before));
      const next = configOf(s, after);
      await engine.apply(next);
      assert.deepEqual((await engine.plan(next)).changes, [], "the plan after the change is empty");
      await engine.remove();
      assert.deepEqual(kernel.state.links, initial.links);
      assert.deepEqual(kernel.state.routes, initial.routes);
      assert.deepEqual(kernel.state.rules, initial.rules);
      assert.deepEqual(kernel.state.sysctls, initial.sysctls);
    }),
    { numRuns: Math.ceil(RUNS / 2) },
  );
  t.diagnostic(`${executed} generated changes`);
});
