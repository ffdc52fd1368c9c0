// A lost state file does not take the anti-spoofing guard away: without the record of rp_filter from
// before symroute, the values symroute lowered read as the node's own, and the plan used to drop the
// guard while rp_filter stayed off (the bench's floor, applied without symroute, showed it as
// `plan` exit 2). The guard on the node names its mode; the plan keeps it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createEngine, type PlanReport } from "../../src/engine/engine.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { configFrom as config } from "../support/config.ts";

const cfg = config(
  "networks:\n  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }\n",
);
const guards = (r: PlanReport): string[] =>
  (r.firewallSpec?.guards ?? []).map((g) => `${g.iif} v${g.family} ${g.mode}`);

test("without the state, plan and apply keep the guard the node has, in its mode", async () => {
  const kernel = new FakeKernel(articleNode());
  const store = new MemoryStore();
  await createEngine({ kernel, store }).apply(cfg);
  // With the state the apply wrote: the guard comes from the recorded rp_filter.
  assert.deepEqual(guards(await createEngine({ kernel, store }).plan(cfg)), ["ext0 v4 strict"]);
  // A lost state: the same guard, nothing to change.
  const lost = new MemoryStore();
  const planned = await createEngine({ kernel, store: lost }).plan(cfg);
  assert.deepEqual(guards(planned), ["ext0 v4 strict"]);
  assert.equal(planned.inSync, true, JSON.stringify(planned.changes));
  const applied = await createEngine({ kernel, store: lost }).apply(cfg);
  assert.equal(applied.inSync, true);
  // The state that apply wrote records no earlier rp_filter: the guard is still kept.
  assert.deepEqual(guards(await createEngine({ kernel, store: lost }).plan(cfg)), ["ext0 v4 strict"]);
});
