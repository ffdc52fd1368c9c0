// The engine against the in-memory node: converge, idempotence, delete, roll back, conflicts.

import { test } from "node:test";
import assert from "node:assert/strict";
import { isSymrouteError } from "../../src/model/errors.ts";
import { createEngine, describeChange, describeChanges } from "../../src/engine/engine.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { configFrom as config, PUBLIC_NETWORK_WITH_PODS } from "../support/config.ts";

const PUBLIC = config(PUBLIC_NETWORK_WITH_PODS);

function setup() {
  const kernel = new FakeKernel(articleNode());
  const store = new MemoryStore();
  return { kernel, store, engine: createEngine({ kernel, store }), initial: structuredClone(kernel.state) };
}

test("apply converges a gateway network with the connmark method, and a second apply changes nothing", async () => {
  const { kernel, engine } = setup();
  const first = await engine.apply(PUBLIC);
  assert.equal(first.applied, true);
  assert.equal(first.networks[0]?.method, "connmark");
  assert.ok(kernel.state.rules.some((r) => r.fwmark === 1 && r.fwmask === 0xff && r.table === 20000));
  assert.ok(
    kernel.state.routes.some((r) => r.table === 20000 && r.dst === "default" && r.gateway === "1.2.3.1"),
  );
  assert.equal(kernel.state.sysctls["net/ipv4/conf/all/rp_filter"], "0");
  assert.equal(kernel.state.sysctls["net/ipv4/conf/ext0/rp_filter"], "0");
  // Every other interface keeps its effective value max(all, own) = 1.
  assert.equal(kernel.state.sysctls["net/ipv4/conf/eth0/rp_filter"], "1");
  assert.equal(kernel.state.sysctls["net/ipv4/conf/default/rp_filter"], "1");
  const payloads = kernel.log.length;
  const second = await engine.apply(PUBLIC);
  assert.equal(second.applied, false);
  assert.equal(second.inSync, true);
  assert.equal(kernel.log.length, payloads, "an in-sync apply runs no tool");
});

test("delete after apply restores the node exactly", async () => {
  const { kernel, store, engine, initial } = setup();
  await engine.apply(PUBLIC);
  const removed = await engine.remove();
  assert.equal(removed.applied, true);
  assert.deepEqual(kernel.state.routes, initial.routes);
  assert.deepEqual(kernel.state.rules, initial.rules);
  assert.deepEqual(kernel.state.sysctls, initial.sysctls);
  assert.deepEqual(
    kernel.state.firewall.flatMap((f) => f.ruleKeys),
    [],
  );
  assert.equal(store.state, undefined, "the state file goes with the last owned object");
});

test("a kernel refusing a rule rolls the whole apply back and names the line", async () => {
  const { kernel, engine, initial } = setup();
  kernel.faults.ipLine = /^rule add/;
  await assert.rejects(engine.apply(PUBLIC), (error: unknown) => {
    assert.ok(isSymrouteError(error));
    assert.match(error.message, /rolled back/);
    assert.ok(
      error.details.some((d) =>
        /failing line 3: rule add priority 1001 fwmark 0x1\/0xff lookup 20000/.test(d),
      ),
      error.details.join("\n"),
    );
    return true;
  });
  assert.deepEqual(kernel.state.routes, initial.routes);
  assert.deepEqual(kernel.state.rules, initial.rules);
  assert.deepEqual(kernel.state.sysctls, initial.sysctls);
});

test("a failing firewall transaction rolls routes and sysctls back", async () => {
  const { kernel, engine, initial } = setup();
  kernel.faults.nft = true;
  await assert.rejects(engine.apply(PUBLIC), /rolled back: nft -f - failed/);
  assert.deepEqual(kernel.state.routes, initial.routes);
  assert.deepEqual(kernel.state.rules, initial.rules);
  assert.deepEqual(kernel.state.sysctls, initial.sysctls);
});

test("a sysctl that cannot be written fails the apply with nothing changed", async () => {
  const { kernel, engine, initial } = setup();
  kernel.faults.sysctl = "net/ipv4/conf/all/rp_filter";
  await assert.rejects(engine.apply(PUBLIC), (e: unknown) => isSymrouteError(e) && e.kind === "permission");
  assert.deepEqual(kernel.state, initial);
});

test("a full disk for the state file fails before the node is touched", async () => {
  const { kernel, store, engine, initial } = setup();
  store.failWrite = true;
  await assert.rejects(engine.apply(PUBLIC), /ENOSPC/);
  assert.deepEqual(kernel.state, initial);
  assert.equal(kernel.log.length, 0);
});

test("a foreign route in the way is a conflict and stays untouched", async () => {
  const { kernel, engine } = setup();
  kernel.state = {
    ...kernel.state,
    links: [...kernel.state.links, { ifname: "eth1", ifindex: 9, up: true }],
    routes: [
      ...kernel.state.routes,
      {
        family: 4,
        table: 254,
        type: "unicast",
        dst: "10.9.8.0/24",
        gateway: "192.168.1.77",
        dev: "eth0",
        protocol: 4,
        scope: 0,
      },
    ],
  };
  const before = structuredClone(kernel.state.routes);
  const report = await engine.apply(
    config(`
networks:
  - name: lb
    addresses: [10.9.8.0/24]
    interface: eth1
`),
  );
  assert.equal(report.networks[0]?.method, "route");
  assert.equal(report.conflicts.length, 1);
  assert.match(report.conflicts[0]?.object ?? "", /10\.9\.8\.0\/24 via 192\.168\.1\.77/);
  assert.deepEqual(kernel.state.routes, before);
});

test("a pool that holds the node's own gateway is refused with nothing changed", async () => {
  const { kernel, engine, initial } = setup();
  kernel.state = {
    ...kernel.state,
    links: [...kernel.state.links, { ifname: "eth1", ifindex: 9, up: true }],
  };
  const withEth1 = structuredClone(kernel.state);
  await assert.rejects(
    engine.apply(config(`networks: [{name: bad, addresses: [192.168.1.0/25], interface: eth1}]`)),
    /would change how this node reaches its own default gateway 192\.168\.1\.1/,
  );
  assert.deepEqual(kernel.state, withEth1);
  void initial;
});

test("a missing interface is reported by name and nothing changes", async () => {
  const { kernel, engine, initial } = setup();
  await assert.rejects(
    engine.apply(
      config(`networks: [{name: pub, addresses: [1.2.3.0/24], interface: nope0, gateway: 1.2.3.1}]`),
    ),
    (e: unknown) =>
      isSymrouteError(e) &&
      e.kind === "dependency" &&
      e.details.some((d) => d.includes('"nope0" does not exist')),
  );
  assert.deepEqual(kernel.state, initial);
});

test("tables and marks stay stable when networks are added and removed", async () => {
  const { kernel, engine } = setup();
  kernel.state = {
    ...kernel.state,
    links: [...kernel.state.links, { ifname: "ext1", ifindex: 8, up: true }],
    sysctls: { ...kernel.state.sysctls, "net/ipv4/conf/ext1/rp_filter": "0" },
  };
  const two = config(`
networks:
  - {name: a, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1}
  - {name: b, addresses: [5.6.7.0/24], interface: ext1, gateway: 5.6.7.1}
`);
  const r1 = await engine.apply(two);
  const b1 = r1.networks.find((n) => n.name === "b");
  const onlyB = config(`networks: [{name: b, addresses: [5.6.7.0/24], interface: ext1, gateway: 5.6.7.1}]`);
  const r2 = await engine.apply(onlyB);
  const b2 = r2.networks.find((n) => n.name === "b");
  assert.equal(b2?.table, b1?.table);
  assert.equal(b2?.mark, b1?.mark);
  assert.ok(!kernel.state.routes.some((r) => r.table === r1.networks.find((n) => n.name === "a")?.table));
});

test("the iptables front end converges and deletes cleanly too", async () => {
  const { kernel, engine, initial } = setup();
  const cfg = { ...PUBLIC, firewall: "iptables" as const };
  const r = await engine.apply(cfg);
  assert.equal(r.firewall, "iptables");
  assert.ok((kernel.state.firewall.find((f) => f.backend === "iptables")?.ruleKeys.length ?? 0) >= 4);
  assert.equal((await engine.apply(cfg)).inSync, true);
  await engine.remove();
  assert.deepEqual(kernel.state.firewall.find((f) => f.backend === "iptables")?.ruleKeys, []);
  assert.deepEqual(kernel.state.sysctls, initial.sysctls);
});

test("the changes' descriptions reuse the rendered batch lines and read as describeChange does", async () => {
  const { engine } = setup();
  const dual = config(`
networks:
  - name: public
    addresses: [1.2.3.0/24, 2001:db8:5::/64]
    interface: ext0
    gateway: 1.2.3.1
  - name: other
    addresses: [5.6.7.0/24]
    interface: ext0
    gateway: 5.6.7.1
`);
  const plan = await engine.plan(dual);
  const kinds = new Set(plan.changes.map((c) => c.kind));
  assert.ok(kinds.has("route") && kinds.has("rule") && kinds.has("sysctl") && kinds.has("firewall"));
  assert.deepEqual(describeChanges(plan.changes, plan.payloads), plan.changes.map(describeChange));
  await engine.apply(dual);
  const removal = await engine.remove(undefined, { dryRun: true });
  assert.deepEqual(describeChanges(removal.changes, removal.payloads), removal.changes.map(describeChange));
});

test(
  "an apply starts routing before it compares the firewall, and verifies each part as soon as that part is written",
  {
    timeout: 30_000, // a wrong order waits forever on the gate below; this turns that into a failure
  },
  async () => {
    const events: string[] = [];
    let openNft: () => void = () => {};
    const nftGate = new Promise<void>((resolve) => (openNft = resolve));
    let rereadStarted: () => void = () => {};
    const routingReread = new Promise<void>((resolve) => (rereadStarted = resolve));
    class GatedKernel extends FakeKernel {
      override async runIpBatch(family: 4 | 6, lines: readonly string[]): Promise<void> {
        events.push("ip");
        return super.runIpBatch(family, lines);
      }
      override async runNft(script: string): Promise<void> {
        events.push("nft start");
        await nftGate;
        events.push("nft done");
        return super.runNft(script);
      }
      override async readNode(scope: Parameters<FakeKernel["readNode"]>[0]) {
        // Verification reads only the families it wrote; planning reads all of them.
        if (scope.families !== undefined) {
          events.push("routing re-read");
          rereadStarted();
        }
        return super.readNode(scope);
      }
    }
    const kernel = new GatedKernel(articleNode());
    const engine = createEngine({ kernel, store: new MemoryStore() });
    const applying = engine.apply(PUBLIC);
    // Routing is read back while the firewall's transaction is still held at the gate.
    await routingReread;
    assert.deepEqual(events, ["ip", "nft start", "routing re-read"]);
    openNft();
    const report = await applying;
    assert.equal(report.applied, true);
    assert.deepEqual(events, ["ip", "nft start", "routing re-read", "nft done"]);
  },
);
