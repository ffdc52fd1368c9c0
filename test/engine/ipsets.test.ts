// The iptables front end keeps its pools in ipsets (one lookup per packet whatever the number of
// pools). The sets are owned like the rules: filled before the rules that refer to them, replaced
// whole when a pool changes, repaired when they drift, rolled back with a failed apply, destroyed
// after the rules by delete; and a node without ipset is told what to install.

import { test } from "node:test";
import assert from "node:assert/strict";
import { isSymrouteError } from "../../src/model/errors.ts";
import { createEngine } from "../../src/engine/engine.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import type { Config } from "../../src/config/schema.ts";
import { configFrom } from "../support/config.ts";

const config = (pools: string, firewall = "iptables"): Config =>
  configFrom(`
firewall: ${firewall}
networks:
  - name: public
    addresses: [${pools}]
    interface: ext0
    gateway: [1.2.3.1, "2001:db8:100::1"]
`);

const BOTH = `1.2.3.0/24, "2001:db8:100::/64"`;
const MORE = `1.2.3.0/24, 1.2.4.0/24, "2001:db8:100::/64"`;

const setNames = (kernel: FakeKernel): string[] => [...kernel.ipsets.keys()].sort();
const purposes = (kernel: FakeKernel): string[] =>
  setNames(kernel).map((n) => n.replace(/-[0-9a-f]{8}$/, ""));

test("iptables: sets filled before the rules, a changed pool is a new set, delete destroys them", async () => {
  const kernel = new FakeKernel(articleNode());
  const engine = createEngine({ kernel, store: new MemoryStore() });
  const applied = await engine.apply(config(BOTH));
  assert.equal(applied.applied, true);
  // Per family, one set for classify and one for the guards' pools.
  assert.deepEqual(purposes(kernel), ["symroute-c4", "symroute-c6", "symroute-g4", "symroute-g6"]);
  const tools = kernel.log.map((l) => l.tool);
  assert.ok(tools.indexOf("ipset restore") < tools.indexOf("iptables-restore -4"), tools.join(", "));
  assert.equal((await engine.plan(config(BOTH))).inSync, true);
  const first = setNames(kernel);

  // One more pool: the IPv4 sets are new ones (their names carry their content), the old ones go
  // after the rules stopped referring to them (the fake refuses to destroy a set in use).
  await engine.apply(config(MORE));
  const second = setNames(kernel);
  assert.deepEqual(
    second.filter((n) => !first.includes(n)).map((n) => n.slice(0, 11)),
    ["symroute-c4", "symroute-g4"],
  );
  assert.equal(second.length, 4);
  assert.deepEqual(kernel.log.filter((l) => l.tool === "ipset restore").at(-1), {
    tool: "ipset restore",
    input: first
      .filter((n) => !second.includes(n))
      .map((n) => `destroy ${n}\n`)
      .join(""),
  });

  await engine.remove();
  assert.deepEqual(setNames(kernel), []);
  assert.deepEqual(
    kernel.state.firewall.flatMap((f) => f.ruleKeys),
    [],
  );
});

test("iptables: a set gone is drift, and apply puts it back", async () => {
  const kernel = new FakeKernel(articleNode());
  const engine = createEngine({ kernel, store: new MemoryStore() });
  await engine.apply(config(BOTH));
  const all = setNames(kernel);
  kernel.ipsets.delete(all[0] as string);
  const plan = await engine.plan(config(BOTH));
  assert.equal(plan.inSync, false);
  assert.ok(plan.changes.some((c) => c.kind === "firewall" && c.action === "replace"));
  await engine.apply(config(BOTH));
  assert.deepEqual(setNames(kernel), all);
  assert.equal((await engine.plan(config(BOTH))).inSync, true);
});

test("iptables: an ipset restore failing mid-way is rolled back to the sets and rules before", async () => {
  const kernel = new FakeKernel(articleNode());
  const engine = createEngine({ kernel, store: new MemoryStore() });
  await engine.apply(config(BOTH));
  const before = setNames(kernel);
  const keys = structuredClone(kernel.state.firewall);
  // The second set's swap fails: the first set was already swapped in, the temporary one is left.
  let swaps = 0;
  kernel.faults.ipsetLine = { test: (line: string) => line.startsWith("swap ") && ++swaps === 2 } as RegExp;
  await assert.rejects(engine.apply(config(MORE)), /rolled back/);
  kernel.faults = {};
  assert.deepEqual(setNames(kernel), before);
  assert.deepEqual(kernel.state.firewall, keys);
  assert.equal((await engine.plan(config(BOTH))).inSync, true);
});

test("iptables front end on a node without ipset: a dependency error naming the package", async () => {
  const kernel = new FakeKernel(articleNode());
  kernel.ipsetInstalled = false;
  const engine = createEngine({ kernel, store: new MemoryStore() });
  await assert.rejects(engine.plan(config(BOTH)), (error: unknown) => {
    assert.ok(isSymrouteError(error));
    assert.equal(error.kind, "dependency");
    assert.match(error.message, /ipset is not installed/);
    assert.match(error.hint ?? "", /Debian package ipset.*firewall: nftables/);
    return true;
  });
  assert.deepEqual(kernel.log, [], "nothing was written");
  // nftables needs no ipset.
  assert.equal((await engine.apply(config(BOTH, "nftables"))).applied, true);
  await engine.remove();
});
