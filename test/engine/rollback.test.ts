// A roll back that meets a failure goes on: every other undo step is tried, and what the error
// lists as still to undo is exactly what failed or was held back. One exception keeps the node
// safe: while conf.all's rp_filter cannot be raised back, no interface's is lowered (its effective
// value, max(all, own), would fall below what it was before the apply).

import { test } from "node:test";
import assert from "node:assert/strict";
import { createEngine } from "../../src/engine/engine.ts";
import { isSymrouteError, type SymrouteError } from "../../src/model/errors.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { dualStackGatewayConfig } from "../support/config.ts";

const PUBLIC = dualStackGatewayConfig("nftables");

function setup() {
  const kernel = new FakeKernel(articleNode());
  const store = new MemoryStore();
  return { kernel, store, engine: createEngine({ kernel, store }), initial: structuredClone(kernel.state) };
}

/** The apply's nft transaction is refused; from then on, `sysctl` cannot be written (the roll back's). */
function failFirewallThenSysctl(kernel: FakeKernel, sysctl: string): void {
  kernel.faults.nft = true;
  kernel.faults.beforeStep = (step) => {
    if (step === "nft") kernel.faults.sysctl = sysctl;
  };
}

/** The apply's error, and what it lists as still to undo. */
async function failedApply(run: Promise<unknown>): Promise<{ error: SymrouteError; stillToUndo: string[] }> {
  let error: unknown;
  await assert.rejects(run, (e: unknown) => {
    error = e;
    return isSymrouteError(e);
  });
  const failure = error as SymrouteError;
  const stillToUndo = failure.details.flatMap((d) => /still to undo: (.*)$/.exec(d)?.[1] ?? []);
  return { error: failure, stillToUndo };
}

test("a sysctl the roll back cannot write: every other undo step runs, and that write is all that is left", async () => {
  const { kernel, store, engine, initial } = setup();
  failFirewallThenSysctl(kernel, "net/ipv4/conf/lo/rp_filter");
  const { error, stillToUndo } = await failedApply(engine.apply(PUBLIC));
  assert.match(error.message, /^apply failed and its roll back was incomplete: nft -f - failed/);
  assert.deepEqual(stillToUndo, ["sysctl net.ipv4.conf.lo.rp_filter 1 -> 0"]);
  assert.ok(error.details.some((d) => /1 change of this apply is still on the node/.test(d)));
  assert.deepEqual(kernel.state.routes, initial.routes);
  assert.deepEqual(kernel.state.rules, initial.rules);
  assert.deepEqual(kernel.state.sysctls, {
    ...initial.sysctls,
    "net/ipv4/conf/lo/rp_filter": "1",
  });
  assert.equal(store.state?.inProgress, true);
  // Once the sysctl can be written, the next apply converges from the node as it is.
  kernel.faults = {};
  assert.equal((await engine.apply(PUBLIC)).applied, true);
  assert.equal((await engine.plan(PUBLIC)).inSync, true);
});

test("conf.all the roll back cannot raise back: no interface is lowered, routing is still undone", async () => {
  const { kernel, engine, initial } = setup();
  failFirewallThenSysctl(kernel, "net/ipv4/conf/all/rp_filter");
  const { error, stillToUndo } = await failedApply(engine.apply(PUBLIC));
  assert.match(error.message, /roll back was incomplete/);
  assert.deepEqual(stillToUndo.sort(), [
    "sysctl net.ipv4.conf.all.rp_filter 0 -> 1",
    "sysctl net.ipv4.conf.default.rp_filter 1 -> 0",
    "sysctl net.ipv4.conf.eth0.rp_filter 1 -> 0",
    "sysctl net.ipv4.conf.lo.rp_filter 1 -> 0",
  ]);
  assert.deepEqual(kernel.state.routes, initial.routes);
  assert.deepEqual(kernel.state.rules, initial.rules);
  // Every interface's effective rp_filter is what it was before the apply (1), ext0's excepted.
  const sysctl = (name: string) => kernel.state.sysctls[`net/ipv4/conf/${name}/rp_filter`];
  assert.equal(sysctl("all"), "0");
  for (const name of ["default", "lo", "eth0"]) assert.equal(sysctl(name), "1", name);
});
