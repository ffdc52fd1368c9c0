// The record written before an apply, read by the run after a crash: it names the iptables mangle
// tables the apply may create (the next run owns those the crash left holding symroute's chains,
// and never a table that was there before), and the firewall spec in force until then (a roll back
// after the crash puts that one back, not the crashed run's, which may never have been applied).

import { test } from "node:test";
import assert from "node:assert/strict";
import { createEngine } from "../../src/engine/engine.ts";
import type { SavedState } from "../../src/engine/ports.ts";
import { articleNode } from "../support/fake-kernel.ts";
import { CrashingStore, MangleKernel } from "../support/mangle-kernel.ts";
import { configFrom } from "../support/config.ts";

const A = "  - {name: a, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1}";
const A6 = "  - {name: a6, addresses: ['2001:db8:5::/64'], interface: ext0, gateway: '2001:db8:5::1'}";
const B = "  - {name: b, addresses: [5.6.7.0/24], interface: ext1, gateway: 5.6.7.1}";
const C = "  - {name: c, addresses: [9.9.9.0/24], interface: ext0, gateway: 9.9.9.1}";
const networks = (firewall: string, ...lines: string[]) =>
  configFrom(`firewall: ${firewall}\nnetworks:\n${lines.join("\n")}\n`);

function setup() {
  const kernel = new MangleKernel(articleNode());
  kernel.state = {
    ...kernel.state,
    links: [...kernel.state.links, { ifname: "ext1", ifindex: 8, up: true }],
    sysctls: { ...kernel.state.sysctls, "net/ipv4/conf/ext1/rp_filter": "1" },
  };
  const store = new CrashingStore(kernel);
  return { kernel, store, engine: createEngine({ kernel, store }) };
}

/** Every firewall object of symroute's on the fake node, front end by front end, and its ipsets. */
const firewallOf = (kernel: MangleKernel): string[] => [
  ...kernel.state.firewall.flatMap((f) => f.ruleKeys.map((k) => `${f.backend} ${k}`)).sort(),
  ...[...kernel.ipsets.keys()].sort(),
];

for (const next of ["delete", "apply then delete"] as const) {
  test(`a first iptables apply killed right after its restore made the mangle table: ${next} drops it`, async () => {
    const { kernel, store, engine } = setup();
    kernel.crashAfter = "iptables4";
    await assert.rejects(engine.apply(networks("iptables", A)), /crash/);
    assert.deepEqual([...kernel.mangle], [4], "the crashed restore made the table");
    assert.equal(store.state?.inProgress, true);
    assert.deepEqual(store.state?.iptablesTablesCreating, [4], "the record says the apply may make it");
    assert.equal(store.state?.iptablesTablesCreated, undefined, "and not that it did");
    kernel.restart();
    if (next === "apply then delete") {
      assert.equal((await engine.apply(networks("iptables", A))).applied, true);
      assert.deepEqual(store.state?.iptablesTablesCreated, [4]);
      assert.equal(store.state?.iptablesTablesCreating, undefined);
    }
    await engine.remove(undefined);
    assert.deepEqual(firewallOf(kernel), []);
    assert.deepEqual([...kernel.mangle], [], "no empty mangle table is left");
  });
}

test("an IPv6 network added to an iptables config, killed after its first ip6tables-restore: delete drops the ip6 mangle table", async () => {
  const { kernel, store, engine } = setup();
  await engine.apply(networks("iptables", A));
  assert.deepEqual(store.state?.iptablesTablesCreated, [4]);
  // Nothing else needs the record before this apply: only the table it may make.
  kernel.crashAfter = "iptables6";
  await assert.rejects(engine.apply(networks("iptables", A, A6)), /crash/);
  assert.deepEqual([...kernel.mangle].sort(), [4, 6]);
  assert.deepEqual(store.state?.iptablesTablesCreating, [6]);
  kernel.restart();
  await engine.remove(undefined);
  assert.deepEqual([...kernel.mangle], []);
});

for (const next of ["delete", "apply then delete"] as const) {
  test(`a delete killed after its payloads, before it dropped the mangle table it made: ${next} drops it`, async () => {
    const { kernel, store, engine } = setup();
    await engine.apply(networks("iptables", A));
    kernel.crashAfter = "drop4";
    await assert.rejects(engine.remove(undefined), /crash/);
    assert.deepEqual(firewallOf(kernel), [], "the delete's payloads ran");
    assert.deepEqual([...kernel.mangle], [4], "the table is still there");
    assert.deepEqual(store.state?.iptablesTablesCreated, [4], "the record still names it");
    kernel.restart();
    if (next === "apply then delete") {
      assert.equal((await engine.apply(networks("iptables", A))).applied, true);
      assert.deepEqual(store.state?.iptablesTablesCreated, [4]);
    }
    // In sync (nothing of symroute's left): the clean-up its commit had yet to do is done.
    await engine.remove(undefined);
    assert.equal(store.state, undefined);
    assert.deepEqual([...kernel.mangle], [], "no empty mangle table is left");
  });
}

for (const foreign of ["empty", "with kube-proxy's chains"] as const) {
  test(`a mangle table that was there before symroute (${foreign}) is never symroute's, crash or not`, async () => {
    const { kernel, store, engine } = setup();
    kernel.mangle.add(4);
    if (foreign !== "empty") kernel.foreignChains.add(4);
    kernel.crashAfter = "iptables4";
    await assert.rejects(engine.apply(networks("iptables", A)), /crash/);
    assert.equal(store.state?.iptablesTablesCreating, undefined, "the apply makes no table");
    kernel.restart();
    assert.equal((await engine.apply(networks("iptables", A))).applied, true);
    assert.equal(store.state?.iptablesTablesCreated, undefined);
    await engine.remove(undefined);
    assert.deepEqual(firewallOf(kernel), []);
    assert.deepEqual([...kernel.mangle], [4], "the table is still there");
  });
}

test("a crash before the restore made the table: the next run does not claim one made later by another tool", async () => {
  const { kernel, store, engine } = setup();
  // The crash comes with the ip batch, which runs before the firewall's restore here.
  kernel.crashAfter = "ip4";
  await assert.rejects(engine.apply(networks("iptables", A)), /crash/);
  assert.deepEqual(store.state?.iptablesTablesCreating, [4]);
  assert.deepEqual([...kernel.mangle], []);
  kernel.restart();
  // Another tool makes the table (empty) before symroute's delete.
  kernel.mangle.add(4);
  await engine.remove(undefined);
  assert.deepEqual([...kernel.mangle], [4], "not symroute's to drop");
});

for (const firewall of ["nftables", "iptables"] as const) {
  test(`${firewall}: after a crash right after the record, a failed run's roll back puts back the firewall in force, not the crashed run's`, async () => {
    const { kernel, store, engine } = setup();
    await engine.apply(networks(firewall, A));
    const inForce = firewallOf(kernel);
    const specInForce = store.state?.firewallSpec;
    // b lowers ext1's rp_filter: the record is written first; the run dies right there.
    const write = store.write.bind(store);
    store.write = async (state: SavedState) => {
      await write(state);
      if (state.inProgress === true) {
        kernel.crashed = true;
        throw new Error("crash (simulated): the process is gone");
      }
    };
    await assert.rejects(engine.apply(networks(firewall, A, B)), /crash/);
    assert.deepEqual(firewallOf(kernel), inForce, "the node is untouched");
    assert.deepEqual(store.state?.firewallSpec, specInForce, "the record keeps the spec in force");
    store.write = write;
    kernel.restart();
    // The next run fails (a route ip refuses) after its firewall transaction ran: rolled back.
    kernel.faults.ipLine = /^route add .*9\.9\.9\./;
    await assert.rejects(engine.apply(networks(firewall, A, C)), /was rolled back/);
    assert.deepEqual(firewallOf(kernel), inForce, "the firewall is the one in force before the crash");
    kernel.faults = {};
    assert.equal((await engine.apply(networks(firewall, A, C))).applied, true);
    assert.equal((await engine.plan(networks(firewall, A, C))).inSync, true);
  });
}
