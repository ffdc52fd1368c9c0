// A state record first written on a node that already holds symroute's objects (the state file lost)
// cannot know the node from before symroute: it says so (`baselineUnknown`), and delete then refuses
// as it does without a state file, or with --force leaves those sysctls as they are and says so.

import { test } from "node:test";
import assert from "node:assert/strict";
import { isSymrouteError } from "../../src/model/errors.ts";
import { createEngine } from "../../src/engine/engine.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { configFrom as config, PUBLIC_NETWORK_WITH_PODS } from "../support/config.ts";

const PUBLIC = config(PUBLIC_NETWORK_WITH_PODS);
const ALL = "net/ipv4/conf/all/rp_filter";

function setup() {
  const kernel = new FakeKernel(articleNode());
  const store = new MemoryStore();
  return { kernel, store, engine: createEngine({ kernel, store }), initial: structuredClone(kernel.state) };
}

/** A node symroute configured, whose state file is then lost. */
async function configuredWithoutState() {
  const s = setup();
  await s.engine.apply(PUBLIC);
  assert.equal(s.kernel.state.sysctls[ALL], "0");
  s.store.state = undefined;
  return s;
}

test("a fresh node: the first record knows the baseline, and delete restores it", async () => {
  const { kernel, store, engine, initial } = setup();
  const applied = await engine.apply(PUBLIC);
  assert.equal(store.state?.baselineUnknown, undefined);
  assert.equal(store.state?.previousSysctls[ALL], "1");
  assert.deepEqual(
    applied.warningDetails.filter((w) => w.kind === "baseline-unknown"),
    [],
  );
  await engine.remove();
  assert.deepEqual(kernel.state.sysctls, initial.sysctls);
});

test("the record rewritten on a configured node says the baseline is unknown; delete refuses", async () => {
  const { kernel, store, engine } = await configuredWithoutState();
  // The agent's in-sync reconcile (nothing to change) writes the record again.
  const report = await engine.apply(PUBLIC);
  assert.equal(report.inSync, true);
  assert.deepEqual(store.state?.previousSysctls, {});
  assert.deepEqual(store.state?.baselineUnknown, ["previousSysctls"]);
  assert.ok(
    report.warnings.some((w) => /no state file at memory.*unknown \(previousSysctls\).*--force/.test(w)),
    report.warnings.join("\n"),
  );
  // It stays unknown: a later run keeps it, and the plan's state says so.
  await engine.apply(PUBLIC);
  assert.deepEqual(store.state?.baselineUnknown, ["previousSysctls"]);
  assert.deepEqual((await engine.plan(PUBLIC)).state?.baselineUnknown, ["previousSysctls"]);

  const before = structuredClone(kernel.state);
  const log = kernel.log.length;
  await assert.rejects(engine.remove(), (e: unknown) => {
    assert.ok(isSymrouteError(e));
    assert.equal(e.kind, "conflict");
    assert.match(e.message, /state file memory was written on a node symroute had already changed/);
    assert.ok(e.details?.includes("net.ipv4.conf.all.rp_filter=0"), JSON.stringify(e.details));
    assert.match(e.hint ?? "", /--force/);
    return true;
  });
  assert.deepEqual(kernel.state, before, "a refused delete changes nothing");
  assert.equal(kernel.log.length, log);
  assert.ok(store.state !== undefined, "and keeps the state file");
  // A dry run refuses the same way.
  await assert.rejects(engine.remove(undefined, { dryRun: true }), /cannot be restored/);
});

test("delete --force on an unknown baseline removes the objects and leaves the sysctls, saying so", async () => {
  const { kernel, store, engine, initial } = await configuredWithoutState();
  await engine.apply(PUBLIC);
  const removed = await engine.remove(undefined, { force: true });
  assert.equal(removed.applied, true);
  assert.ok(
    removed.warnings.some((w) =>
      /was written on a node symroute had already changed.*not restored: .*net\.ipv4\.conf\.all\.rp_filter=0/.test(
        w,
      ),
    ),
    removed.warnings.join("\n"),
  );
  assert.deepEqual(kernel.state.rules, initial.rules);
  assert.deepEqual(kernel.state.routes, initial.routes);
  assert.equal(kernel.state.sysctls[ALL], "0", "the value from before symroute is unknown: left as it is");
  assert.equal(store.state, undefined);
});

test("a config change after the loss records what it changes, and delete names only the rest", async () => {
  const { kernel, store, engine } = await configuredWithoutState();
  await engine.apply(PUBLIC);
  // ext1 comes with a pool: its rp_filter is lowered by this apply, whose value before is known.
  kernel.state = {
    ...kernel.state,
    links: [...kernel.state.links, { ifname: "ext1", ifindex: 8, up: true }],
    sysctls: { ...kernel.state.sysctls, "net/ipv4/conf/ext1/rp_filter": "1" },
  };
  const both = config(`
podCIDRs: [10.112.0.0/12]
networks:
  - {name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1}
  - {name: b, addresses: [5.6.7.0/24], interface: ext1, gateway: 5.6.7.1}
`);
  await engine.apply(both);
  assert.equal(store.state?.previousSysctls["net/ipv4/conf/ext1/rp_filter"], "1");
  assert.deepEqual(store.state?.baselineUnknown, ["previousSysctls"]);
  const forced = await engine.remove(undefined, { force: true });
  const warning = forced.warnings.join("\n");
  assert.match(warning, /net\.ipv4\.conf\.all\.rp_filter=0/);
  assert.doesNotMatch(warning, /ext1/, "ext1's value before is known and put back");
  assert.equal(kernel.state.sysctls["net/ipv4/conf/ext1/rp_filter"], "1");
});

test("with the iptables front end the mangle tables are unknown too", async () => {
  const { store, engine } = setup();
  const iptables = { ...PUBLIC, firewall: "iptables" as const };
  await engine.apply(iptables);
  store.state = undefined;
  await engine.apply(iptables);
  assert.deepEqual((await store.read())?.baselineUnknown, ["previousSysctls", "iptablesTablesCreated"]);
  await assert.rejects(engine.remove(), (e: unknown) => {
    assert.ok(isSymrouteError(e));
    assert.ok(e.details?.includes("the iptables mangle table(s)"), JSON.stringify(e.details));
    return true;
  });
});

test("an older state file without the field reads as a complete record", async () => {
  const { kernel, store, engine, initial } = setup();
  await engine.apply(PUBLIC);
  assert.ok(store.state !== undefined && !("baselineUnknown" in store.state));
  await engine.remove();
  assert.deepEqual(kernel.state.sysctls, initial.sysctls);
});

test("a VLAN link on the node: the links symroute created are unknown too, and named on delete", async () => {
  const { kernel, store, engine } = await configuredWithoutState();
  kernel.state = {
    ...kernel.state,
    links: [
      ...kernel.state.links,
      { ifname: "eth0.100", ifindex: 9, up: true, kind: "vlan", link: "eth0", vlanId: 100 },
    ],
  };
  await engine.apply(PUBLIC);
  assert.deepEqual(store.state?.baselineUnknown, ["previousSysctls", "createdLinks"]);
  const forced = await engine.remove(undefined, { force: true });
  assert.match(forced.warnings.join("\n"), /left in place: VLAN link eth0\.100/);
  assert.ok(
    kernel.state.links.some((l) => l.ifname === "eth0.100"),
    "a link not known as symroute's stays",
  );
});

test("delete without a state file counts the objects symroute owns, not the changes that remove them", async () => {
  const { engine } = await configuredWithoutState();
  const { ownedObjects, changes } = await engine.plan(PUBLIC);
  assert.ok(ownedObjects > 1, `owned: ${ownedObjects}`);
  await assert.rejects(engine.remove(), (e: unknown) => {
    assert.ok(isSymrouteError(e));
    assert.match(e.message, new RegExp(`^found ${ownedObjects} objects symroute owns but no state file at`));
    return true;
  });
  assert.equal(changes.length, 0, "the plan of the same config is in sync");
});
