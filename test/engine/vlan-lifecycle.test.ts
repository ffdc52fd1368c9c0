// A VLAN symroute creates (`vlan:`) is wanted for as long as a network names it: the run after the
// one that made it keeps it (it was planned for deletion, so every later apply failed verification
// and rolled back, and an agent did so on every reconcile), and removing its network deletes it
// without first writing the sysctls that go with it. This kernel has no 802.1Q (the e2e test
// test/cli/vlan.e2e.test.ts skips here): the fake kernel, which models a VLAN link as the kernel
// lists it, drives the engine.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createEngine } from "../../src/engine/engine.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { configFrom } from "../support/config.ts";

const PUBLIC = `  - { name: public, addresses: [1.2.3.0/24], interface: eth0.100, vlan: { parent: eth0, id: 100 }, gateway: 1.2.3.1 }\n`;
const ONE = configFrom(`networks:\n${PUBLIC}`);
const TWO = configFrom(
  `networks:\n${PUBLIC}  - { name: other, addresses: [5.6.7.0/24], interface: eth0.103, vlan: { parent: eth0, id: 103 }, gateway: 5.6.7.1 }\n`,
);
const TWO_V6 = configFrom(
  `networks:\n${PUBLIC}  - { name: other, addresses: ["2001:db8:4::/64"], interface: eth0.103, vlan: { parent: eth0, id: 103 }, gateway: "2001:db8:4::1" }\n`,
);

function setup(rpFilter = "1") {
  const node = articleNode();
  const kernel = new FakeKernel({
    ...node,
    sysctls: {
      ...node.sysctls,
      "net/ipv4/conf/all/rp_filter": rpFilter,
      "net/ipv4/conf/default/rp_filter": rpFilter,
    },
  });
  const store = new MemoryStore();
  return { kernel, store, engine: createEngine({ kernel, store }), initial: structuredClone(kernel.state) };
}

const linkNames = (kernel: FakeKernel): string[] => kernel.state.links.map((l) => l.ifname);

test("the run after the one that created the VLAN keeps it: in sync, nothing to change", async () => {
  const { kernel, store, engine } = setup();
  assert.equal((await engine.apply(ONE)).applied, true);
  assert.deepEqual(store.state?.createdLinks, ["eth0.100"]);
  const plan = await engine.plan(ONE);
  assert.deepEqual(plan.changes, [], "no change pending, the VLAN link above all");
  const again = await engine.apply(ONE);
  assert.equal(again.applied, false);
  assert.ok(linkNames(kernel).includes("eth0.100"));
  assert.deepEqual(store.state?.createdLinks, ["eth0.100"], "still symroute's, for delete");
});

for (const rpFilter of ["0", "1", "2"]) {
  test(`removing a network on a VLAN symroute created deletes the link, no sysctl of it written (rp_filter ${rpFilter})`, async () => {
    const { kernel, engine, initial } = setup(rpFilter);
    await engine.apply(TWO);
    const plan = await engine.plan(ONE);
    assert.deepEqual(
      plan.changes.filter((c) => c.kind === "link" || (c.kind === "sysctl" && c.name.includes("eth0.103"))),
      [{ kind: "link", action: "delete", vlan: { ifname: "eth0.103", parent: "eth0", id: 103 } }],
    );
    assert.equal((await engine.apply(ONE)).applied, true);
    assert.deepEqual(
      linkNames(kernel).filter((l) => l.startsWith("eth0.")),
      ["eth0.100"],
    );
    assert.deepEqual((await engine.plan(ONE)).changes, []);
    // Its pool moved to IPv6 on the same VLAN, and back: each converges.
    await engine.apply(TWO);
    assert.equal((await engine.apply(TWO_V6)).applied, true);
    assert.deepEqual((await engine.plan(TWO_V6)).changes, []);
    assert.equal((await engine.apply(TWO)).applied, true);
    await engine.remove(undefined);
    assert.deepEqual(
      linkNames(kernel),
      initial.links.map((l) => l.ifname),
    );
  });
}
