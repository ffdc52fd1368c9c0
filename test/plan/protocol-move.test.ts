// A change of `routeProtocol` is a move: symroute owns what carries the protocol its state records
// (and any former one a move left unfinished), re-makes its routes and rules under the new number
// and deletes the old ones, in one apply. Against the in-memory node: the plan, the batch order (a
// reply finds its table after every line), a crash after any line of the batch (the next run and a
// delete still own both numbers), a roll back, and the tables a new network may take meanwhile.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createEngine } from "../../src/engine/engine.ts";
import type { SavedState } from "../../src/engine/ports.ts";
import type { NodeState } from "../../src/model/state.ts";
import { diffRouting } from "../../src/plan/diff.ts";
import { EMPTY_DESIRED } from "../../src/plan/desired.ts";
import { compileRoutingState } from "../../src/simulate/compile.ts";
import { formatTrace } from "../../src/simulate/format.ts";
import { tracePacket } from "../../src/simulate/trace.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { configFrom } from "../support/config.ts";

const OLD = 201;
const NEW = 202;
/** Another tool's route under the number a move goes to. */
const FOREIGN_UNDER_NEW = {
  family: 4,
  table: 254,
  type: "unicast",
  dst: "172.16.0.0/16",
  gateway: "192.168.1.1",
  dev: "eth0",
  protocol: NEW,
  scope: 0,
} as const;
const A = "  - { name: a, addresses: [10.0.3.0/24], interface: ext0, gateway: 10.0.3.1 }";
const B = "  - { name: b, addresses: [10.1.3.0/24], interface: ext0, gateway: 10.1.3.1 }";
const C = "  - { name: c, addresses: [10.2.3.0/24], interface: ext0, gateway: 10.2.3.1 }";
const D = "  - { name: d, addresses: [10.4.3.0/24], interface: ext0, gateway: 10.4.3.1 }";
const ONLINK = "  - { name: onlink, addresses: [10.9.8.0/24], interface: ext0, method: route }";
const withProtocol = (protocol: number, networks = [A, B, C, ONLINK]) =>
  configFrom(`routeProtocol: ${protocol}\npodCIDRs: [10.112.0.0/12]\nnetworks:\n${networks.join("\n")}\n`);

/** The protocols of every route and rule that is not the kernel's own (proto kernel or unset). */
function protocolsOf(state: NodeState): number[] {
  return [...state.routes, ...state.rules]
    .map((o) => o.protocol)
    .filter((p): p is number => p === OLD || p === NEW);
}

const count = (state: NodeState, protocol: number): number =>
  protocolsOf(state).filter((p) => p === protocol).length;

/** Remembers every state written, in order. */
class RecordingStore extends MemoryStore {
  readonly writes: SavedState[] = [];
  override async write(state: SavedState): Promise<void> {
    this.writes.push(structuredClone(state));
    await super.write(state);
  }
}

async function appliedUnder(protocol: number) {
  const kernel = new FakeKernel(articleNode());
  const store = new RecordingStore();
  const engine = createEngine({ kernel, store });
  await engine.apply(withProtocol(protocol));
  return { kernel, store, engine };
}

/** A marked reply of network b, and what routes it. */
const replyOfB = (state: NodeState) =>
  tracePacket(
    compileRoutingState(state),
    { from: "192.168.1.10", to: "198.51.100.7", mark: 2 },
    { explain: true },
  );

test("the plan of a protocol move: routes replaced in place, rules added under the new number and deleted under the old; no conflict", async () => {
  const { engine, kernel } = await appliedUnder(OLD);
  const owned = count(kernel.state, OLD);
  assert.ok(owned >= 8, `routes and rules under ${OLD}: ${owned}`);
  const plan = await engine.plan(withProtocol(NEW));
  assert.equal(plan.inSync, false);
  assert.deepEqual(plan.conflicts, []);
  assert.ok(
    plan.warnings.includes(
      `routeProtocol moves from ${OLD} (the state file's) to ${NEW}: ${owned} routes and rules of symroute's still carry it; the apply re-makes them under ${NEW} and removes them`,
    ),
    plan.warnings.join("\n"),
  );
  const routing = plan.changes.filter((c) => c.kind === "route" || c.kind === "rule");
  const routes = routing.filter((c) => c.kind === "route");
  assert.ok(routes.length > 0);
  for (const c of routes) {
    assert.equal(c.action, "replace", JSON.stringify(c));
    assert.equal(c.kind === "route" && c.route.protocol, NEW);
    assert.equal(c.kind === "route" && c.action === "replace" && c.previous?.protocol, OLD);
  }
  const rules = routing.filter((c) => c.kind === "rule");
  const added = rules.filter((c) => c.action === "add");
  const deleted = rules.filter((c) => c.action === "delete");
  assert.ok(added.every((c) => c.kind === "rule" && c.rule.protocol === NEW));
  assert.ok(deleted.every((c) => c.kind === "rule" && c.rule.protocol === OLD));
  assert.equal(added.length, deleted.length);
  assert.equal(routes.length + added.length, owned, "every object of symroute's is moved");
  // Counted as symroute's under either number.
  assert.equal(plan.ownedObjects, (await engine.plan(withProtocol(OLD))).ownedObjects);
  // Nothing but the protocol changes: the firewall and the sysctls are as they were.
  assert.deepEqual(
    plan.changes.filter((c) => c.kind !== "route" && c.kind !== "rule"),
    [],
  );
});

test("a protocol move: one apply, a reply finds its table after every line, the state records the new number", async () => {
  const { engine, kernel, store } = await appliedUnder(OLD);
  const before = replyOfB(kernel.state);
  assert.equal(before.table, 20001, formatTrace(before).join("\n"));
  const replay = new FakeKernel(kernel.state);
  const logged = kernel.log.length;
  store.writes.length = 0;

  const report = await engine.apply(withProtocol(NEW));
  assert.equal(report.applied, true);
  assert.equal(report.inSync, true);
  assert.equal(count(kernel.state, OLD), 0, "nothing left under the old number");
  assert.ok(
    !(await engine.plan(withProtocol(NEW))).warningDetails.some((w) => w.kind === "route-protocol-move"),
  );
  assert.ok(count(kernel.state, NEW) > 0);
  // Recorded before the node is touched with the old number among the former ones, then committed
  // without it.
  assert.deepEqual(
    store.writes.map((w) => [w.routeProtocol, w.formerRouteProtocols, w.inProgress]),
    [
      [NEW, [OLD], true],
      [NEW, undefined, undefined],
    ],
  );
  assert.equal((await engine.plan(withProtocol(NEW))).inSync, true);

  const lines = kernel.log
    .slice(logged)
    .filter((l) => l.tool === "ip -4 -batch")
    .flatMap((l) => l.input.split("\n"));
  for (const [i, line] of lines.entries()) {
    await replay.runIpBatch(4, [line]);
    const reply = replyOfB(replay.state);
    assert.equal(reply.table, 20001, `after line ${i + 1} (${line}):\n${formatTrace(reply).join("\n")}`);
  }
  assert.deepEqual(replay.state.rules, kernel.state.rules);
  assert.deepEqual(replay.state.routes, kernel.state.routes);

  // delete from the state alone (no config) finds everything under the new number.
  await engine.remove();
  assert.deepEqual(protocolsOf(kernel.state), []);
});

test("a crash after any line of a protocol move: the next apply converges, and a delete removes both numbers", async () => {
  const { engine, kernel, store } = await appliedUnder(OLD);
  const start = structuredClone(kernel.state);
  const logged = kernel.log.length;
  store.writes.length = 0;
  await engine.apply(withProtocol(NEW));
  const recordBefore = store.writes[0];
  assert.equal(recordBefore?.inProgress, true);
  const lines = kernel.log
    .slice(logged)
    .filter((l) => l.tool === "ip -4 -batch")
    .flatMap((l) => l.input.split("\n"));
  assert.ok(lines.length > 4, lines.join("\n"));

  for (let ran = 0; ran <= lines.length; ran++) {
    for (const next of ["apply", "delete"] as const) {
      // The node as the crash left it (the first `ran` lines), and the record written before.
      const crashed = new FakeKernel(start);
      await crashed.runIpBatch(4, lines.slice(0, ran));
      const crashedStore = new MemoryStore();
      crashedStore.state = structuredClone(recordBefore);
      const again = createEngine({ kernel: crashed, store: crashedStore });
      const where = `after ${ran} line(s), then ${next}`;
      if (next === "apply") {
        const plan = await again.plan(withProtocol(NEW));
        assert.deepEqual(plan.conflicts, [], where);
        assert.equal(plan.inSync, ran === lines.length, where);
        await again.apply(withProtocol(NEW));
        assert.equal(count(crashed.state, OLD), 0, where);
        assert.equal(count(crashed.state, NEW), count(kernel.state, NEW), where);
        assert.equal(crashedStore.state?.routeProtocol, NEW, where);
        assert.equal(crashedStore.state?.formerRouteProtocols, undefined, where);
        assert.equal(crashedStore.state?.inProgress, undefined, where);
        assert.equal((await again.plan(withProtocol(NEW))).inSync, true, where);
      } else {
        await again.remove();
        assert.deepEqual(protocolsOf(crashed.state), [], where);
        assert.deepEqual(crashed.state.sysctls, articleNode().sysctls, where);
      }
    }
  }
});

test("a protocol move rolled back whole: the node and the state under the old number, another tool's routes under the new one are not symroute's", async () => {
  const { engine, kernel, store } = await appliedUnder(OLD);
  const before = structuredClone(kernel.state);
  // The last rule deletion is refused: everything before it ran, and is undone.
  kernel.faults.ipLine = /^rule del .* proto 201$/;
  await assert.rejects(engine.apply(withProtocol(NEW)), /rolled back/);
  kernel.faults = {};
  assert.deepEqual(kernel.state.routes, before.routes);
  assert.deepEqual(kernel.state.rules, before.rules);
  // Nothing of symroute's carries the new number: the record is the saved one (a crash during the
  // move is covered by the record written before it, which names both).
  assert.equal(store.state?.routeProtocol, OLD);
  assert.equal(store.state?.formerRouteProtocols, undefined);
  // Another tool then uses the new number; back to the old number: in sync, its route kept.
  const foreign = FOREIGN_UNDER_NEW;
  kernel.state = { ...kernel.state, routes: [...kernel.state.routes, foreign] };
  assert.equal((await engine.plan(withProtocol(OLD))).inSync, true);
  await engine.apply(withProtocol(OLD));
  assert.equal(store.state?.routeProtocol, OLD);
  assert.equal(store.state?.formerRouteProtocols, undefined);
  assert.ok(kernel.state.routes.some((r) => r.dst === foreign.dst));
  kernel.state = { ...kernel.state, routes: kernel.state.routes.filter((r) => r.dst !== foreign.dst) };
  // Or forward again: converges under the new one.
  await engine.apply(withProtocol(NEW));
  assert.equal(count(kernel.state, OLD), 0);
  assert.equal(store.state?.routeProtocol, NEW);
});

test("a move to a number another tool's routes carry: the plan says the apply deletes them", async () => {
  const { engine, kernel } = await appliedUnder(OLD);
  kernel.state = {
    ...kernel.state,
    routes: [...kernel.state.routes, FOREIGN_UNDER_NEW],
  };
  const plan = await engine.plan(withProtocol(NEW));
  assert.ok(
    plan.warnings.some((w) =>
      w.startsWith(`1 route or rule on the node already carries proto ${NEW} and is not symroute's to keep`),
    ),
    plan.warnings.join("\n"),
  );
  assert.ok(
    plan.changes.some((c) => c.kind === "route" && c.action === "delete" && c.route.dst === "172.16.0.0/16"),
  );
  // Without a move, no such warning (the number was symroute's already).
  const same = await engine.plan(withProtocol(OLD));
  // By kind: with one such object the words are "already carries", which a test of "already carry" misses.
  assert.ok(!same.warningDetails.some((w) => w.kind === "route-protocol-taken"), same.warnings.join("\n"));
});

test("a protocol move frees and takes tables as a run under one number does: the old number's objects are symroute's", async () => {
  const { kernel, store } = await appliedUnder(OLD);
  // c goes, d comes: d takes the same table with or without a move of the protocol, not the one c
  // leaves (20002: new networks take a table no network held while the range has one).
  const sameNumber = await createEngine({ kernel, store }).plan(withProtocol(OLD, [A, B, D, ONLINK]));
  const moved = await createEngine({ kernel, store }).plan(withProtocol(NEW, [A, B, D, ONLINK]));
  const tableOfD = (networks: typeof moved.networks) => networks.find((n) => n.name === "d")?.table;
  assert.equal(tableOfD(sameNumber.networks), 20003);
  assert.equal(tableOfD(moved.networks), 20003);
  assert.deepEqual(moved.conflicts, []);
  // Without the state naming it, the old number's objects are someone else's: never deleted.
  const own = {
    routeProtocol: NEW,
    rulePriorities: { from: 1000, to: 1999 },
    previousSysctls: {},
    createdLinks: [],
  };
  const nothing = EMPTY_DESIRED;
  assert.deepEqual(diffRouting(nothing, kernel.state, own).changes, []);
  const withState = diffRouting(nothing, kernel.state, { ...own, formerRouteProtocols: [OLD] });
  assert.equal(withState.changes.length, count(kernel.state, OLD));
  assert.ok(withState.changes.every((c) => c.action === "delete"));
});

// The other ownership settings move the same way (owned by protocol, they need no record of the
// old value): the rule band, the table range, the mark mask, and all of them with the protocol.
const SETTINGS = {
  band: "rulePriorities: { from: 3000, to: 3999 }\n",
  tables: "tables: { from: 30000, to: 30099 }\n",
  marks: "marks: { mask: 0xf00, avoid: [] }\n",
};
for (const [name, settings] of [
  ...Object.entries(SETTINGS),
  ["all with the protocol", Object.values(SETTINGS).join("")],
] as const) {
  test(`${name} changed: one apply moves everything, in sync after, a delete leaves the node as it was`, async () => {
    const initial = articleNode();
    const kernel = new FakeKernel(initial);
    const store = new MemoryStore();
    const engine = createEngine({ kernel, store });
    await engine.apply(withProtocol(OLD));
    const protocol = name === "all with the protocol" ? NEW : OLD;
    const moved = configFrom(
      `${settings}routeProtocol: ${protocol}\npodCIDRs: [10.112.0.0/12]\nnetworks:\n${[A, B, C, ONLINK].join("\n")}\n`,
    );
    const plan = await engine.plan(moved);
    assert.equal(plan.inSync, false);
    assert.deepEqual(plan.conflicts, []);
    // A new mask moves the marks: refused unless accepted (mark-moves.test.ts), then done in one apply.
    if (settings.includes("marks"))
      await assert.rejects(engine.apply(moved), /mark of 3 networks would move/);
    await engine.apply(moved, { moveMarks: true });
    assert.equal((await engine.plan(moved)).inSync, true);
    const ours = [...kernel.state.routes, ...kernel.state.rules].filter(
      (o) => o.protocol === OLD || o.protocol === NEW,
    );
    assert.ok(ours.every((o) => o.protocol === protocol));
    const tables = new Set(kernel.state.routes.filter((r) => r.protocol === protocol).map((r) => r.table));
    const expectTables =
      name === "band" || name === "marks" ? [254, 20000, 20001, 20002] : [254, 30000, 30001, 30002];
    assert.deepEqual(
      [...tables].sort((a, b) => a - b),
      expectTables,
    );
    for (const r of kernel.state.rules.filter((x) => x.protocol === protocol)) {
      const from = name === "band" || name.startsWith("all") ? 3000 : 1000;
      assert.ok(r.priority >= from && r.priority <= from + 999, JSON.stringify(r));
      if (r.fwmark !== undefined && r.fwmark !== 0 && (name === "marks" || name.startsWith("all")))
        assert.equal(r.fwmark & ~0xf00, 0, JSON.stringify(r));
    }
    await engine.remove();
    assert.deepEqual(kernel.state.routes, initial.routes);
    assert.deepEqual(kernel.state.rules, initial.rules);
    assert.deepEqual(kernel.state.sysctls, initial.sysctls);
    assert.deepEqual(
      kernel.state.firewall.flatMap((f) => f.ruleKeys),
      [],
    );
  });
}
