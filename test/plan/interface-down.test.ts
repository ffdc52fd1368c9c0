// A network's interface that is down, a VLAN symroute manages included: its routes are left out of
// the plan (the kernel refuses them, test/cli/interface-down.e2e.test.ts), with a warning; the rest
// of the node converges. The fake kernel refuses a route through a down link as Linux does.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createEngine } from "../../src/engine/engine.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { configFrom } from "../support/config.ts";

test("a VLAN of the config's that is down: its routes wait, the other network converges", async () => {
  const node = articleNode();
  const kernel = new FakeKernel({
    ...node,
    links: [
      ...node.links,
      { ifname: "eth0.100", ifindex: 9, up: false, kind: "vlan", vlanId: 100, link: "eth0" },
    ],
    sysctls: { ...node.sysctls, "net/ipv4/conf/eth0.100/rp_filter": "0" },
  });
  const engine = createEngine({ kernel, store: new MemoryStore() });
  const config = configFrom(`networks:
  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
  - { name: tagged, addresses: [5.6.7.0/24], interface: eth0.100, vlan: { parent: eth0, id: 100 }, gateway: 5.6.7.1 }
`);
  const report = await engine.apply(config);
  assert.ok(
    report.warnings.some((w) => w.startsWith('interface "eth0.100" (network "tagged") is down')),
    report.warnings.join("\n"),
  );
  assert.deepEqual(
    kernel.state.routes.filter((r) => r.dev === "eth0.100"),
    [],
  );
  assert.equal(kernel.state.routes.filter((r) => r.dev === "ext0" && r.table === 20000).length, 2);
  assert.equal((await engine.plan(config)).inSync, true);
});
