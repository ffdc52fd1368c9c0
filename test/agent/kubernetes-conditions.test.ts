// The SymrouteNetwork conditions as a function of the per-node entries.

import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { summarizeNodes, type Condition } from "../../src/agent/kubernetes/conditions.ts";
import type { NodeStatus } from "../../src/agent/kubernetes/resources.ts";

const entry = (converged: boolean, reason: string, message = "m"): NodeStatus => ({
  converged,
  reason,
  message,
  lastTransitionTime: "2026-01-01T00:00:00Z",
});

describe("SymrouteNetwork conditions", () => {
  it("Unknown with no nodes, True when all converged, False naming the first failing node", () => {
    const none = summarizeNodes({}, 1, undefined, "T1");
    assert.deepEqual(none.conditions[0], {
      type: "Converged",
      status: "Unknown",
      reason: "NoNodes",
      message: "no node has reported on this network yet",
      lastTransitionTime: "T1",
      observedGeneration: 1,
    });
    assert.equal(none.convergedNodes, "0/0");
    const all = summarizeNodes(
      { a: entry(true, "Converged"), b: entry(true, "NotAnnounced") },
      2,
      none.conditions,
      "T2",
    );
    assert.equal(all.conditions[0]?.status, "True");
    assert.equal(all.conditions[0]?.message, "2 of 2 nodes converged");
    const one = summarizeNodes({ a: entry(true, "Converged") }, 2, none.conditions, "T2");
    assert.equal(one.conditions[0]?.message, "1 of 1 node converged");
    assert.equal(all.convergedNodes, "2/2");
    const bad = summarizeNodes(
      {
        c: entry(false, "ApplyFailed", "nft: no such file"),
        a: entry(true, "Converged"),
        b: entry(false, "Conflict", "rule 1001"),
      },
      2,
      all.conditions,
      "T3",
    );
    assert.equal(bad.conditions[0]?.status, "False");
    assert.equal(bad.conditions[0]?.reason, "Conflict");
    assert.equal(
      bad.conditions[0]?.message,
      "2 of 3 nodes not converged; b: Conflict: rule 1001 (and 1 more: c)",
    );
    assert.equal(bad.convergedNodes, "1/3");
  });

  it("keeps lastTransitionTime while the status stays, and keeps other writers' conditions", () => {
    const other: Condition = {
      type: "Reviewed",
      status: "True",
      reason: "R",
      message: "",
      lastTransitionTime: "T0",
    };
    const first = summarizeNodes({ a: entry(true, "Converged") }, 1, [other], "T1");
    assert.deepEqual(
      first.conditions.map((c) => c.type),
      ["Converged", "Reviewed"],
    );
    const same = summarizeNodes(
      { a: entry(true, "Converged"), b: entry(true, "Converged") },
      2,
      first.conditions,
      "T2",
    );
    assert.equal(same.conditions[0]?.lastTransitionTime, "T1");
    const flipped = summarizeNodes({ a: entry(false, "Conflict") }, 2, same.conditions, "T3");
    assert.equal(flipped.conditions[0]?.lastTransitionTime, "T3");
  });
});
