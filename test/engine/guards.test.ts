// Anti-spoofing guards and ARP probes are owned like every other object: planned with a reason,
// recorded in the state file, repaired when they drift, rolled back with a failed apply, removed by
// delete; and an iptables node without nft is told what the probes need.

import { test } from "node:test";
import assert from "node:assert/strict";
import { isSymrouteError } from "../../src/model/errors.ts";
import { createEngine } from "../../src/engine/engine.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { configFrom as config, dualStackGatewayConfig } from "../support/config.ts";

const configFor = dualStackGatewayConfig;

for (const firewall of ["nftables", "iptables"] as const) {
  test(`guards and ARP probes: applied, recorded, repaired, rolled back and removed (${firewall})`, async () => {
    const kernel = new FakeKernel(articleNode());
    const store = new MemoryStore();
    const engine = createEngine({ kernel, store });
    const cfg = configFor(firewall);
    const initial = structuredClone(kernel.state);

    const applied = await engine.apply(cfg);
    assert.equal(applied.applied, true);
    assert.deepEqual(
      applied.firewallSpec?.guards?.map((g) => [g.family, g.iif, g.mode]),
      [
        [4, "ext0", "strict"],
        [6, "ext0", "strict"],
      ],
    );
    assert.deepEqual(
      applied.firewallSpec?.arpProbes?.map((p) => [p.oif, p.targets]),
      [["ext0", ["1.2.3.1/32"]]],
    );
    assert.deepEqual(store.state?.firewallSpec, applied.firewallSpec, "the state file records both");
    const keys = () => kernel.state.firewall.find((f) => f.backend === firewall)?.ruleKeys ?? [];
    assert.ok(keys().some((k) => k.startsWith("arp:")));

    // Drift: the ARP table gone, then a guard rule gone: each is a pending change, and apply repairs it.
    const full = [...keys()];
    for (const lost of [
      (k: string) => k.startsWith("arp:"),
      (k: string) => /v6 strict source check/.test(k),
    ]) {
      kernel.state = {
        ...kernel.state,
        firewall: kernel.state.firewall.map((f) =>
          f.backend === firewall ? { ...f, ruleKeys: f.ruleKeys.filter((k) => !lost(k)) } : f,
        ),
      };
      const plan = await engine.plan(cfg);
      assert.equal(plan.inSync, false);
      assert.ok(plan.changes.some((c) => c.kind === "firewall" && c.action === "replace"));
      await engine.apply(cfg);
      assert.deepEqual([...keys()].sort(), [...full].sort());
    }

    // A failed firewall transaction on a changed spec rolls back to the recorded one.
    const fewer = config(`
firewall: ${firewall}
networks:
  - name: public
    addresses: [1.2.3.0/24]
    interface: ext0
    gateway: 1.2.3.1
`);
    if (firewall === "nftables") kernel.faults.nft = true;
    else {
      // Refused once: the sets are filled before it, and the roll back's own restore destroys them.
      let refused = false;
      kernel.faults.beforeStep = (step) => {
        kernel.faults.iptables = step.startsWith("iptables") && !refused;
        refused ||= kernel.faults.iptables;
      };
    }
    await assert.rejects(engine.apply(fewer), /rolled back/);
    kernel.faults = {};
    assert.deepEqual([...keys()].sort(), [...full].sort());
    assert.equal((await engine.plan(cfg)).inSync, true);

    await engine.remove();
    assert.deepEqual(
      kernel.state.firewall.flatMap((f) => f.ruleKeys),
      [],
    );
    assert.deepEqual(kernel.state.sysctls, initial.sysctls);
  });
}

test("ARP probes with the iptables front end on a node without nft: a dependency error naming the package", async () => {
  const kernel = new FakeKernel(articleNode());
  kernel.firewalls = ["iptables"];
  const engine = createEngine({ kernel, store: new MemoryStore() });
  await assert.rejects(engine.plan(configFor("iptables")), (error: unknown) => {
    assert.ok(isSymrouteError(error));
    assert.equal(error.kind, "dependency");
    assert.match(error.message, /ARP probes on ext0 need nft/);
    assert.match(error.hint ?? "", /nftables/);
    return true;
  });
});

test("no probes where the interface has an address in the gateway's subnet", async () => {
  const node = articleNode();
  const kernel = new FakeKernel({
    ...node,
    addresses: [...node.addresses, { ifname: "ext0", family: 4, local: "1.2.3.10", prefixlen: 24 }],
  });
  const plan = await createEngine({ kernel, store: new MemoryStore() }).plan(configFor("nftables"));
  assert.deepEqual(plan.firewallSpec?.arpProbes, undefined);
});

test("switching front end moves the guards and the ARP table with it, and back", async () => {
  const kernel = new FakeKernel(articleNode());
  const engine = createEngine({ kernel, store: new MemoryStore() });
  const owned = (backend: string) => kernel.state.firewall.find((f) => f.backend === backend)?.ruleKeys ?? [];
  for (const [to, from] of [
    ["nftables", "iptables"],
    ["iptables", "nftables"],
    ["nftables", "iptables"],
  ] as const) {
    const applied = await engine.apply(configFor(to));
    assert.equal(applied.applied, true);
    assert.ok(
      owned(to).some((k) => k.startsWith("arp:")),
      `${to} holds the ARP table`,
    );
    assert.deepEqual(owned(from), [], `${from} holds nothing of ours`);
    assert.equal((await engine.plan(configFor(to))).inSync, true);
  }
  await engine.remove();
  assert.deepEqual(
    kernel.state.firewall.flatMap((f) => f.ruleKeys),
    [],
  );
});
