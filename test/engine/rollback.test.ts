// A roll back that meets a failure goes on: every other undo step is tried, and what the error
// lists as still to undo is exactly what failed or was held back. One exception keeps the node
// safe: while conf.all's rp_filter cannot be raised back, no interface's is lowered (its effective
// value, max(all, own), would fall below what it was before the apply).

import { test } from "node:test";
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { createEngine } from "../../src/engine/engine.ts";
import { isSymrouteError, type SymrouteError } from "../../src/model/errors.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { configFrom, dualStackGatewayConfig } from "../support/config.ts";

const PUBLIC = configFrom(`
podCIDRs: [10.112.0.0/12]
networks:
  - name: public
    addresses: [1.2.3.0/24]
    interface: ext0
    gateway: 1.2.3.1
`);

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

async function applyError(run: Promise<unknown>): Promise<SymrouteError> {
  const error = await run.then(
    () => assert.fail("the apply should fail"),
    (e: unknown) => e,
  );
  assert.ok(isSymrouteError(error), String(error));
  return error;
}

const stillToUndo = (error: SymrouteError): string[] =>
  error.details.filter((d) => d.includes("still to undo: ")).map((d) => d.replace(/^.*still to undo: /, ""));

test("a sysctl the roll back cannot write: every other undo step runs, and that write is all that is left", async () => {
  const { kernel, store, engine, initial } = setup();
  failFirewallThenSysctl(kernel, "net/ipv4/conf/lo/rp_filter");
  const error = await applyError(engine.apply(PUBLIC));
  assert.match(error.message, /^apply failed and its roll back was incomplete: nft -f - failed/);
  assert.deepEqual(stillToUndo(error), ["sysctl net.ipv4.conf.lo.rp_filter 1 -> 0"]);
  assert.ok(error.details.some((d) => /1 change\(s\) of this apply are still on the node/.test(d)));
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
  const error = await applyError(engine.apply(PUBLIC));
  assert.match(error.message, /roll back was incomplete/);
  assert.deepEqual(stillToUndo(error).sort(), [
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

test("an ip line the roll back cannot run: the lines after it are still undone", async () => {
  const { kernel, store, engine, initial } = setup();
  kernel.faults.beforeStep = (step) => {
    kernel.faults.read = "routing";
    // The apply's batches run; the roll back's are refused at their rule lines (the first ones).
    if (step === "ip4" && kernel.log.some((l) => l.tool === "ip -4 -batch"))
      kernel.faults.ipLine = /^rule del/;
  };
  const error = await applyError(engine.apply(dualStackGatewayConfig("nftables")));
  assert.match(error.message, /^apply failed and its roll back was incomplete: /);
  assert.deepEqual(stillToUndo(error).sort(), [
    "ip -6 rule del priority 1001 fwmark 0x1/0xff lookup 20000 proto 201",
    "ip rule del priority 1001 fwmark 0x1/0xff lookup 20000 proto 201",
  ]);
  // The routes in symroute's tables went; only the two rules stayed.
  assert.deepEqual(kernel.state.routes, initial.routes);
  const stayed = kernel.state.rules.filter((r) => !initial.rules.some((i) => isDeepStrictEqual(i, r)));
  assert.deepEqual(
    stayed.map((r) => [r.family, r.priority, r.fwmark, r.table]),
    [
      [4, 1001, 1, 20000],
      [6, 1001, 1, 20000],
    ],
  );
  assert.deepEqual(kernel.state.sysctls, initial.sysctls);
  assert.equal(store.state?.inProgress, true);
});
