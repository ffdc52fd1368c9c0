// A link an apply tried to add is symroute's only while it may be on the node. A first apply whose
// VLAN the kernel refused (no 802.1Q) left `createdLinks: [eth0.100]` in the state file after its
// complete roll back; the operator then made eth0.100 another way, as the error's hint says, and the
// next apply without `vlan:` deleted that interface (measured in a scratch namespace with the CLI).

import { test } from "node:test";
import assert from "node:assert/strict";
import { createEngine } from "../../src/engine/engine.ts";
import { isSymrouteError } from "../../src/model/errors.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { configFrom } from "../support/config.ts";

const WITH_VLAN = configFrom(`networks:
  - { name: public, addresses: [1.2.3.0/24], interface: eth0.100, vlan: { parent: eth0, id: 100 }, gateway: 1.2.3.1 }
`);
const WITHOUT_VLAN = configFrom(`networks:
  - { name: public, addresses: [1.2.3.0/24], interface: eth0.100, gateway: 1.2.3.1 }
`);

test("a VLAN the kernel refuses is not recorded as created: the interface made another way later is kept", async () => {
  const kernel = new FakeKernel(articleNode());
  const store = new MemoryStore();
  const engine = createEngine({ kernel, store });
  kernel.faults.ipLine = /type vlan/;
  await assert.rejects(
    engine.apply(WITH_VLAN),
    (e: unknown) => isSymrouteError(e) && /rolled back/.test(e.message),
  );
  assert.deepEqual(store.state?.createdLinks ?? [], [], "no link of this run is on the node");
  assert.equal(store.state?.inProgress, undefined, "the roll back was complete");

  // The operator makes eth0.100 another way and drops vlan: from the configuration.
  kernel.faults = {};
  kernel.state = {
    ...kernel.state,
    links: [...kernel.state.links, { ifname: "eth0.100", ifindex: 9, up: true, kind: "veth" }],
    sysctls: { ...kernel.state.sysctls, "net/ipv4/conf/eth0.100/rp_filter": "0" },
  };
  const plan = await engine.plan(WITHOUT_VLAN);
  assert.ok(!plan.changes.some((c) => c.kind === "link"), JSON.stringify(plan.changes));
  assert.equal((await engine.apply(WITHOUT_VLAN)).applied, true);
  assert.ok(
    kernel.state.links.some((l) => l.ifname === "eth0.100"),
    "the operator's interface is kept",
  );
  await engine.remove(undefined);
  assert.ok(
    kernel.state.links.some((l) => l.ifname === "eth0.100"),
    "delete keeps it too",
  );
});

test("a crash before the VLAN was added, then a run the kernel refuses it: the roll back does not keep the link the crash's record named", async () => {
  const kernel = new FakeKernel(articleNode());
  // The record written before the apply names eth0.100; the run ends there (a crash).
  const crashing = new MemoryStore();
  const write = crashing.write.bind(crashing);
  crashing.write = async (state) => {
    await write(state);
    if (state.inProgress === true) throw new Error("crash (simulated): the run ends here");
  };
  await assert.rejects(createEngine({ kernel, store: crashing }).apply(WITH_VLAN), /crash/);
  assert.deepEqual(crashing.state?.createdLinks, ["eth0.100"]);
  const store = new MemoryStore();
  await store.write(crashing.state as NonNullable<typeof crashing.state>);
  const engine = createEngine({ kernel, store });
  kernel.faults.ipLine = /type vlan/;
  await assert.rejects(
    engine.apply(WITH_VLAN),
    (e: unknown) => isSymrouteError(e) && /rolled back/.test(e.message),
  );
  assert.deepEqual(store.state?.createdLinks, [], "eth0.100 is not on the node");

  kernel.faults = {};
  kernel.state = {
    ...kernel.state,
    links: [...kernel.state.links, { ifname: "eth0.100", ifindex: 9, up: true, kind: "veth" }],
    sysctls: { ...kernel.state.sysctls, "net/ipv4/conf/eth0.100/rp_filter": "0" },
  };
  assert.equal((await engine.apply(WITHOUT_VLAN)).applied, true);
  assert.ok(
    kernel.state.links.some((l) => l.ifname === "eth0.100"),
    "the operator's interface is kept",
  );
});

test("a crash before the VLAN was added, then a run in sync without it: the settled record does not name the link, and a later delete keeps an interface of that name", async () => {
  const kernel = new FakeKernel(articleNode());
  const ONE = configFrom(`networks:
  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
`);
  const ONE_AND_VLAN = configFrom(`networks:
  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
  - { name: tagged, addresses: [5.6.7.0/24], interface: eth0.100, vlan: { parent: eth0, id: 100 }, gateway: 5.6.7.1 }
`);
  const store = new MemoryStore();
  await createEngine({ kernel, store }).apply(ONE);
  // The record written before the VLAN's apply names eth0.100; the run ends there (a crash).
  const write = store.write.bind(store);
  store.write = async (state) => {
    await write(state);
    if (state.inProgress === true) throw new Error("crash (simulated): the run ends here");
  };
  await assert.rejects(createEngine({ kernel, store }).apply(ONE_AND_VLAN), /crash/);
  assert.deepEqual(store.state?.createdLinks, ["eth0.100"]);
  store.write = write;
  // The config goes back: the node is in sync, and the record is settled.
  const engine = createEngine({ kernel, store });
  const report = await engine.apply(ONE);
  assert.equal(report.inSync, true);
  assert.equal(store.state?.inProgress, undefined);
  assert.deepEqual(store.state?.createdLinks, [], "eth0.100 was never made");
  assert.ok(
    !Object.keys(store.state?.previousSysctls ?? {}).some((n) => n.includes("eth0.100")),
    "nor its sysctls written",
  );
  // The operator makes eth0.100; a delete leaves it.
  kernel.state = {
    ...kernel.state,
    links: [...kernel.state.links, { ifname: "eth0.100", ifindex: 9, up: true, kind: "veth" }],
    sysctls: { ...kernel.state.sysctls, "net/ipv4/conf/eth0.100/rp_filter": "1" },
  };
  await engine.remove(undefined);
  assert.ok(
    kernel.state.links.some((l) => l.ifname === "eth0.100"),
    "the operator's interface is kept",
  );
});

test("a saved link gone from the node and a new one this run adds: the link is recorded before the apply", async () => {
  const kernel = new FakeKernel(articleNode());
  const store = new MemoryStore();
  const vlan = (id: number) =>
    configFrom(`networks:
  - { name: public, addresses: [1.2.3.0/24], interface: eth0.${id}, vlan: { parent: eth0, id: ${id} }, gateway: 1.2.3.1 }
`);
  const engine = createEngine({ kernel, store });
  await engine.apply(vlan(100));
  assert.deepEqual(store.state?.createdLinks, ["eth0.100"]);
  // Someone deletes eth0.100; the next apply makes eth0.200: a crash after it must know that link.
  kernel.state = { ...kernel.state, links: kernel.state.links.filter((l) => l.ifname !== "eth0.100") };
  const records: (readonly string[])[] = [];
  const write = store.write.bind(store);
  store.write = async (state) => {
    if (state.inProgress === true) records.push(state.createdLinks);
    await write(state);
  };
  assert.equal((await engine.apply(vlan(200))).applied, true);
  assert.deepEqual(records, [["eth0.200"]], "recorded before it is made");
  assert.deepEqual(store.state?.createdLinks, ["eth0.200"]);
});
