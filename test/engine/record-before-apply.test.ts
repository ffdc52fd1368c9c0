// The state record written before the node is touched (steps/record.ts): only when a run after a
// crash would need it. Each write is seen with what the node held at that moment.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createEngine } from "../../src/engine/engine.ts";
import type { SavedState } from "../../src/engine/ports.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { configFrom as config } from "../support/config.ts";

/** Remembers every write, with how many payloads the kernel had run when it came. */
class WatchedStore extends MemoryStore {
  readonly writes: { readonly inProgress: boolean; readonly payloadsBefore: number }[] = [];
  constructor(private readonly kernel: FakeKernel) {
    super();
  }
  override async write(state: SavedState): Promise<void> {
    this.writes.push({ inProgress: state.inProgress === true, payloadsBefore: this.kernel.log.length });
    await super.write(state);
  }
}

function setup() {
  const kernel = new FakeKernel(articleNode());
  kernel.state = {
    ...kernel.state,
    links: [...kernel.state.links, { ifname: "ext1", ifindex: 8, up: true }],
    sysctls: { ...kernel.state.sysctls, "net/ipv4/conf/ext1/rp_filter": "1" },
  };
  const store = new WatchedStore(kernel);
  return { kernel, store, engine: createEngine({ kernel, store }) };
}

const networks = (...lines: string[]) =>
  config(`podCIDRs: [10.112.0.0/12]\nnetworks:\n${lines.join("\n")}\n`);
const A = "  - {name: a, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1}";
const A2 = "  - {name: a2, addresses: [1.2.4.0/24], interface: ext0, gateway: 1.2.4.1}";
const B = "  - {name: b, addresses: [5.6.7.0/24], interface: ext1, gateway: 5.6.7.1}";

test("the first apply records its state before it touches the node, and commits after", async () => {
  const { store, engine } = setup();
  await engine.apply(networks(A));
  assert.deepEqual(store.writes, [
    { inProgress: true, payloadsBefore: 0 },
    { inProgress: false, payloadsBefore: store.writes[1]?.payloadsBefore },
  ]);
  assert.ok((store.writes[1]?.payloadsBefore ?? 0) > 0);
});

test("a network added on the same interface writes the state once, after the node changed", async () => {
  const { kernel, store, engine } = setup();
  await engine.apply(networks(A));
  store.writes.length = 0;
  const before = kernel.log.length;
  const report = await engine.apply(networks(A, A2));
  assert.equal(report.applied, true);
  assert.deepEqual(store.writes, [{ inProgress: false, payloadsBefore: kernel.log.length }]);
  assert.ok(kernel.log.length > before);
  assert.ok(store.state?.allocations["a2"] !== undefined, "the commit records the new allocation");
  // Removed again: the same.
  store.writes.length = 0;
  await engine.apply(networks(A));
  assert.deepEqual(
    store.writes.map((w) => w.inProgress),
    [false],
  );
});

test("a network that changes a sysctl symroute did not change before is recorded before the change", async () => {
  const { kernel, store, engine } = setup();
  await engine.apply(networks(A));
  store.writes.length = 0;
  const before = kernel.log.length;
  await engine.apply(networks(A, B));
  // ext1's rp_filter is lowered: its value before must be on disk before it is written.
  assert.deepEqual(store.writes[0], { inProgress: true, payloadsBefore: before });
  assert.equal(kernel.state.sysctls["net/ipv4/conf/ext1/rp_filter"], "0");
  assert.equal(store.state?.previousSysctls["net/ipv4/conf/ext1/rp_filter"], "1");
});

test("a new rule priority band is recorded before the node is touched", async () => {
  const { kernel, store, engine } = setup();
  const c = networks(A);
  await engine.apply(c);
  store.writes.length = 0;
  const before = kernel.log.length;
  const moved = { from: c.rulePriorities.from + 100, to: c.rulePriorities.to + 100 };
  assert.equal((await engine.apply({ ...c, rulePriorities: moved })).applied, true);
  assert.deepEqual(store.writes[0], { inProgress: true, payloadsBefore: before });
  assert.deepEqual(store.state?.rulePriorities, moved);
});

test("a switch of firewall front end is recorded before the node is touched", async () => {
  const { kernel, store, engine } = setup();
  await engine.apply(networks(A));
  store.writes.length = 0;
  const before = kernel.log.length;
  await engine.apply({ ...networks(A), firewall: "iptables" });
  assert.deepEqual(store.writes[0], { inProgress: true, payloadsBefore: before });
});

/** A store whose write of an in-progress record is the last thing the run does: it crashes there. */
class CrashingAtRecord extends MemoryStore {
  record: SavedState | undefined;
  override async write(state: SavedState): Promise<void> {
    if (state.inProgress === true) {
      this.record = structuredClone(state);
      await super.write(state);
      throw new Error("crash (simulated): the run ends here");
    }
    await super.write(state);
  }
}

for (const [from, to] of [
  ["iptables", "nftables"],
  ["nftables", "iptables"],
] as const) {
  test(`a crash right after the record of a move from ${from} to ${to}: the next run removes the ${from} firewall`, async () => {
    const kernel = new FakeKernel(articleNode());
    const first = new MemoryStore();
    const gateway = (firewall: string) => config(`firewall: ${firewall}\nnetworks:\n${A}\n`);
    await createEngine({ kernel, store: first }).apply(gateway(from));
    const crashing = new CrashingAtRecord();
    await crashing.write(first.state as SavedState);
    await assert.rejects(createEngine({ kernel, store: crashing }).apply(gateway(to)), /crash/);
    assert.equal(crashing.record?.firewall, to, "the record before the move names the new front end");
    // The node is untouched: the next run starts from that record.
    const next = new MemoryStore();
    await next.write(crashing.record as SavedState);
    assert.equal((await createEngine({ kernel, store: next }).apply(gateway(to))).applied, true);
    const left = kernel.state.firewall.filter((f) => f.backend === from).flatMap((f) => f.ruleKeys);
    assert.deepEqual(left, [], `nothing of the ${from} front end is left`);
    if (from === "iptables") assert.deepEqual([...kernel.ipsets.keys()], [], "nor its sets");
    assert.equal((await createEngine({ kernel, store: next }).plan(gateway(to))).inSync, true);
  });
}

for (const [from, to] of [
  ["iptables", "nftables"],
  ["nftables", "iptables"],
] as const) {
  test(`after a crash in a move from ${from} to ${to}, a run rolled back whole keeps the record in progress: the one after it removes the ${from} firewall`, async () => {
    const { kernel } = setup();
    const first = new MemoryStore();
    const gateway = (firewall: string, ...more: string[]) =>
      config(`podCIDRs: [10.112.0.0/12]\nfirewall: ${firewall}\nnetworks:\n${[A, ...more].join("\n")}\n`);
    await createEngine({ kernel, store: first }).apply(gateway(from));
    const crashing = new CrashingAtRecord();
    await crashing.write(first.state as SavedState);
    await assert.rejects(createEngine({ kernel, store: crashing }).apply(gateway(to)), /crash/);
    const next = new MemoryStore();
    await next.write(crashing.record as SavedState);
    // The next run fails before its firewall half runs (a sysctl write) and is rolled back whole:
    // the node is as the crash left it, both front ends' objects on it.
    kernel.faults.sysctl = "net/ipv4/conf/ext1/rp_filter";
    await assert.rejects(
      createEngine({ kernel, store: next }).apply(gateway(to, B)),
      /apply failed and was rolled back/,
    );
    assert.equal(next.state?.inProgress, true, "the record is still that of a run in progress");
    kernel.faults = {};
    assert.equal((await createEngine({ kernel, store: next }).apply(gateway(to))).applied, true);
    const left = kernel.state.firewall.filter((f) => f.backend === from).flatMap((f) => f.ruleKeys);
    assert.deepEqual(left, [], `nothing of the ${from} front end is left`);
    assert.equal(next.state?.inProgress, undefined);
  });
}

test("a crash after a move of front end ran whole, before the commit's record: the next run, in sync, settles the record", async () => {
  const { kernel } = setup();
  const gateway = (firewall: string) =>
    config(`podCIDRs: [10.112.0.0/12]\nfirewall: ${firewall}\nnetworks:\n${A}\n`);
  const store = new MemoryStore();
  await createEngine({ kernel, store }).apply(gateway("iptables"));
  // The move runs whole; the crash comes just before the commit's write: the state file keeps the
  // record written before the move.
  let before: SavedState | undefined;
  const write = store.write.bind(store);
  store.write = async (state) => {
    if (state.inProgress === true) before = structuredClone(state);
    await write(state);
  };
  await createEngine({ kernel, store }).apply(gateway("nftables"));
  assert.equal(before?.inProgress, true);
  const next = new MemoryStore();
  await next.write(before as SavedState);
  const report = await createEngine({ kernel, store: next }).apply(gateway("nftables"));
  assert.equal(report.inSync, true);
  assert.equal(next.state?.inProgress, undefined, "the record is no longer in progress");
  assert.equal((await createEngine({ kernel, store: next }).plan(gateway("nftables"))).inSync, true);
});
