// A verification read that fails after the apply wrote (`ip -j` or `nft -j list` failing) is a
// failed verification: the apply is rolled back and the error says so. When the roll back itself
// cannot finish, the error says what is still changed and the state file stays `inProgress`.

import { test } from "node:test";
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { createEngine } from "../../src/engine/engine.ts";
import { isSymrouteError, type SymrouteError } from "../../src/model/errors.ts";
import type { NodeState } from "../../src/model/state.ts";
import { FakeKernel, articleNode, type FakeFaults } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { dualStackGatewayConfig } from "../support/config.ts";

const network = dualStackGatewayConfig;

function setup() {
  const kernel = new FakeKernel(articleNode());
  const store = new MemoryStore();
  return { kernel, store, engine: createEngine({ kernel, store }), initial: structuredClone(kernel.state) };
}

/** Fails `read` from the apply's first write on (until a test clears `faults.read`). */
function failReadsAfterFirstWrite(kernel: FakeKernel, read: NonNullable<FakeFaults["read"]>): void {
  let written = false;
  kernel.faults.beforeStep = () => {
    if (!written) kernel.faults.read = read;
    written = true;
  };
}

function assertAsBefore(kernel: FakeKernel, initial: NodeState): void {
  assert.deepEqual(kernel.state.links, initial.links);
  assert.deepEqual(kernel.state.routes, initial.routes);
  assert.deepEqual(kernel.state.rules, initial.rules);
  assert.deepEqual(kernel.state.sysctls, initial.sysctls);
  assert.deepEqual(
    kernel.state.firewall.flatMap((f) => f.ruleKeys),
    [],
  );
  assert.deepEqual([...kernel.ipsets.keys()], []);
}

async function applyError(run: Promise<unknown>): Promise<SymrouteError> {
  const error = await run.then(
    () => assert.fail("the apply should fail"),
    (e: unknown) => e,
  );
  assert.ok(isSymrouteError(error), String(error));
  return error;
}

for (const firewall of ["nftables", "iptables"] as const) {
  for (const read of ["routing", "firewall"] as const) {
    test(`${firewall}: the ${read} read failing after the apply rolls the apply back`, async () => {
      const { kernel, store, engine, initial } = setup();
      failReadsAfterFirstWrite(kernel, read);
      // iptables' roll back reads its chains again (its payloads depend on the jumps present):
      // here only the verification's read fails, as a tool failing once would.
      if (firewall === "iptables" && read === "firewall") {
        const readFirewall = kernel.readFirewall.bind(kernel);
        kernel.readFirewall = async (backends) => {
          const result = readFirewall(backends);
          kernel.faults.read = undefined;
          return result;
        };
      }
      const error = await applyError(engine.apply(network(firewall)));
      assert.equal(error.kind, "verification");
      assert.match(
        error.message,
        /^apply failed and was rolled back: could not read the node back to verify what this run wrote: .*injected read failure/,
      );
      assert.match(error.hint ?? "", /as it was before this run.*run the same command again/);
      assertAsBefore(kernel, initial);
      assert.equal(store.state?.inProgress, undefined, "the state file is no longer in progress");
      // Once the tool reads again, the same apply converges.
      kernel.faults = {};
      assert.equal((await engine.apply(network(firewall))).applied, true);
      assert.equal((await engine.plan(network(firewall))).inSync, true);
    });
  }
}

test("iptables: a firewall read that keeps failing leaves the firewall as the apply left it, and says so", async () => {
  const { kernel, store, engine, initial } = setup();
  failReadsAfterFirstWrite(kernel, "firewall");
  const error = await applyError(engine.apply(network("iptables")));
  assert.equal(error.kind, "verification");
  assert.match(error.message, /^apply failed and its roll back was incomplete: could not read the node back/);
  assert.ok(
    error.details.some((d) => /roll back of the iptables firewall failed: .*injected read failure/.test(d)),
    error.details.join("\n"),
  );
  assert.ok(
    error.details.some((d) => /routing, links and sysctls are as before this apply/.test(d)),
    error.details.join("\n"),
  );
  assert.match(error.hint ?? "", /symroute apply.*symroute delete/);
  // Routing came back; the firewall did not, and the state file says the apply did not finish.
  assert.deepEqual(kernel.state.routes, initial.routes);
  assert.deepEqual(kernel.state.rules, initial.rules);
  assert.deepEqual(kernel.state.sysctls, initial.sysctls);
  assert.notDeepEqual(
    kernel.state.firewall.flatMap((f) => f.ruleKeys),
    [],
  );
  assert.equal(store.state?.inProgress, true);
  kernel.faults = {};
  assert.equal((await engine.apply(network("iptables"))).applied, true);
  assert.equal((await engine.plan(network("iptables"))).inSync, true);
});

test("a routing roll back that fails goes on past the refused line, and names exactly what is still on the node", async () => {
  const { kernel, store, engine, initial } = setup();
  kernel.faults.beforeStep = (step) => {
    kernel.faults.read = "routing";
    // The apply's batches run; the roll back's are refused at their rule lines (the first ones).
    if (step === "ip4" && kernel.log.some((l) => l.tool === "ip -4 -batch"))
      kernel.faults.ipLine = /^rule del/;
  };
  const error = await applyError(engine.apply(network("nftables")));
  assert.match(error.message, /^apply failed and its roll back was incomplete: /);
  const details = error.details.join("\n");
  assert.match(details, /roll back of routing failed: .*Invalid argument \(injected\)/);
  assert.deepEqual(error.details.filter((d) => d.includes("still to undo: ")).sort(), [
    "now: still to undo: ip -6 rule del priority 1001 fwmark 0x1/0xff lookup 20000 proto 201",
    "now: still to undo: ip rule del priority 1001 fwmark 0x1/0xff lookup 20000 proto 201",
  ]);
  assert.match(details, /symroute's nftables firewall is as before this apply/);
  // The routes in symroute's tables went (the lines after the refused ones ran); the rules stayed.
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

test("a delete whose verification read fails is rolled back: the node keeps what the apply made", async () => {
  const { kernel, store, engine } = setup();
  await engine.apply(network("nftables"));
  const applied = structuredClone(kernel.state);
  const savedBefore = structuredClone(store.state);
  failReadsAfterFirstWrite(kernel, "routing");
  const error = await applyError(engine.remove());
  assert.match(error.message, /^delete failed and was rolled back: could not read the node back/);
  assert.deepEqual(kernel.state.routes, applied.routes);
  assert.deepEqual(kernel.state.rules, applied.rules);
  assert.deepEqual(kernel.state.sysctls, applied.sysctls);
  assert.deepEqual(kernel.state.firewall, applied.firewall);
  assert.deepEqual(store.state?.previousSysctls, savedBefore?.previousSysctls);
  kernel.faults = {};
  assert.equal((await engine.remove()).applied, true);
  assert.equal(store.state, undefined);
});
