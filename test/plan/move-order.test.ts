// A rule that moves to another priority never leaves a moment without a rule for its packets: the
// batch adds the new rule before it deletes the old one. Here the band grows from four priorities
// (no room for the skip rule: exemptions at B, every network rule at B+1) to the full layout
// (exemptions at B+3, source rules at B+4), the same move the introduction of the skip rule made;
// the batch is replayed line by line and a reply of the source network is traced after each line.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createEngine } from "../../src/engine/engine.ts";
import { compileRoutingState } from "../../src/simulate/compile.ts";
import { formatTrace } from "../../src/simulate/format.ts";
import { tracePacket } from "../../src/simulate/trace.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { configFrom as config } from "../support/config.ts";

const withBand = (to: number) =>
  config(`
podCIDRs: [10.112.0.0/12]
rulePriorities: { from: 1000, to: ${to} }
networks:
  - { name: a, addresses: [10.0.3.0/24], interface: ext0, gateway: 10.0.3.1 }
  - { name: b, addresses: [10.1.3.0/24], interface: ext0, gateway: 10.1.3.1 }
  - { name: c, addresses: [10.2.3.0/24], interface: ext0, gateway: 10.2.3.1 }
  - { name: ipvs, addresses: [10.3.3.0/24], interface: ext0, gateway: 10.3.3.1, method: source }
`);

test("source rules moved by a wider band: a reply finds its table after every line of the batch", async () => {
  const base = articleNode();
  // IPVS puts the LB address on the node: its replies are locally generated from it.
  const node = {
    ...base,
    addresses: [...base.addresses, { ifname: "ext0", family: 4 as const, local: "10.3.3.4", prefixlen: 32 }],
  };
  const kernel = new FakeKernel(node);
  const engine = createEngine({ kernel, store: new MemoryStore() });
  await engine.apply(withBand(1003));
  const trace = (state: typeof kernel.state) =>
    tracePacket(compileRoutingState(state), { from: "10.3.3.4", to: "198.51.100.7" }, { explain: true });
  const before = trace(kernel.state);
  assert.equal(before.table, 20003, formatTrace(before).join("\n"));
  assert.equal(before.rule?.priority, 1001);

  const replay = new FakeKernel(kernel.state);
  const logged = kernel.log.length;
  await engine.apply(withBand(1999));
  const after = trace(kernel.state);
  assert.equal(after.rule?.priority, 1004, formatTrace(after).join("\n"));

  const lines = kernel.log
    .slice(logged)
    .filter((l) => l.tool === "ip -4 -batch")
    .flatMap((l) => l.input.split("\n"));
  assert.ok(
    lines.some((l) => l.startsWith("rule del priority 1001 from 10.3.3.0/24")),
    lines.join("\n"),
  );
  for (const [i, line] of lines.entries()) {
    await replay.runIpBatch(4, [line]);
    const reply = trace(replay.state);
    assert.equal(reply.table, 20003, `after line ${i + 1} (${line}):\n${formatTrace(reply).join("\n")}`);
  }
});
