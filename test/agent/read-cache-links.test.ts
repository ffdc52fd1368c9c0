// A link event of an interface symroute's netdev chains hook makes the agent's kept firewall read
// stale (src/agent/read-cache.ts): a kernel that drops a base chain with its device says nothing on
// nft's monitor, so the link's own event is the only evidence. Other links' events (a pod's veth)
// keep it. (Linux 6.18 keeps the chain: test/agent/interface-recreate.e2e.test.ts.) And such an
// interface's link event cuts the failures' backoff short while the agent waits for it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createEngine } from "../../src/engine/engine.ts";
import { kernelEventResetsBackoff } from "../../src/agent/kernel-monitor.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { dualStackGatewayConfig } from "../support/config.ts";
import { cached, sourceOf, stamped } from "./support/read-cache.ts";

test("a [LINK] line of a hooked interface sends the next firewall read to the kernel; another link's does not", async () => {
  const fake = new FakeKernel(articleNode());
  const { cache, wrapped, reads } = cached(fake);
  cache.watchHookedInterfaces(() => new Set(["ext0"]));
  await createEngine({ kernel: wrapped, store: new MemoryStore() }).apply(dualStackGatewayConfig("nftables"));
  const readFirewall = () => sourceOf(reads, () => wrapped.readFirewall(["nftables"]));
  assert.equal(await readFirewall(), "cache");
  cache.routingLine(
    stamped(Date.now() + 1, "[LINK]9: vethpod@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500"),
  );
  assert.equal(await readFirewall(), "cache", "a pod's veth");
  cache.routingLine(stamped(Date.now() + 1, "[LINK]Deleted 3: ext0@if4: <BROADCAST,MULTICAST> mtu 1500"));
  assert.equal(await readFirewall(), "kernel", "ext0 deleted");
  cache.routingLine(stamped(Date.now() + 1, "[LINK]5: ext0@if6: <BROADCAST,MULTICAST> mtu 1500"));
  assert.equal(await readFirewall(), "kernel", "ext0 created");
});

test("a link or address line of a configured interface cuts the backoff short (while waiting for it); others do not", () => {
  const interfaces = new Set(["ext0", "eth0.100"]);
  assert.equal(
    kernelEventResetsBackoff("[LINK]5: ext0@if6: <BROADCAST,MULTICAST> mtu 1500", interfaces),
    true,
  );
  assert.equal(kernelEventResetsBackoff("[LINK]Deleted 5: ext0@if6: <BROADCAST> mtu 1500", interfaces), true);
  assert.equal(kernelEventResetsBackoff("[LINK]7: eth0.100@eth0: <BROADCAST,UP> mtu 1500", interfaces), true);
  assert.equal(
    kernelEventResetsBackoff("[ADDR]5: ext0    inet 1.2.3.9/24 scope global ext0", interfaces),
    true,
  );
  assert.equal(kernelEventResetsBackoff("[LINK]9: vethpod@if3: <BROADCAST,UP> mtu 1500", interfaces), false);
  assert.equal(
    kernelEventResetsBackoff("[ROUTE]1.2.3.0/24 dev ext0 table 20000 proto 201", interfaces),
    false,
  );
  assert.equal(kernelEventResetsBackoff("add rule inet symroute pre counter", interfaces), false);
});
