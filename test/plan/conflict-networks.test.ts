// Each conflict names the networks whose objects the foreign one is in the way of, so that the
// agent's SymrouteNetwork status shows a network its own conflicts, not the whole node's.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { Route, Rule } from "../../src/model/state.ts";
import { diffRouting } from "../../src/plan/diff.ts";
import { articleNode } from "../support/fake-kernel.ts";
import { configFrom } from "../support/config.ts";
import { desiredOnArticleNode, freshOwnership } from "../support/desired.ts";

// Three connmark networks on ext0 (a skip rule over their fwmark rules) and one route network.
const cfg = configFrom(`
networks:
  - { name: n0, addresses: [10.0.3.0/24], interface: ext0, gateway: 10.0.3.1 }
  - { name: n1, addresses: [10.1.3.0/24], interface: ext0, gateway: 10.1.3.1 }
  - { name: n2, addresses: [10.2.3.0/24], interface: ext0, gateway: 10.2.3.1 }
  - { name: direct, addresses: [5.6.7.0/24], interface: ext0 }
`);
const desired = desiredOnArticleNode(cfg);
const own = freshOwnership(cfg);
const tableOf = (name: string): number => {
  const table = desired.decisions.find((d) => d.name === name)?.table;
  assert.ok(table !== undefined, `${name} has a table`);
  return table;
};

test("each conflict names the networks it is in the way of", () => {
  const n2Rule = desired.rules.find((r) => r.table === tableOf("n2"));
  assert.ok(n2Rule !== undefined);
  const foreign = {
    // An operator's route in n1's table.
    inN1Table: {
      family: 4,
      table: tableOf("n1"),
      type: "unicast",
      dst: "9.9.9.0/24",
      dev: "ext0",
      protocol: 4,
      scope: 253,
    } satisfies Route,
    // Someone else's route for direct's pool in main.
    inDirectsWay: {
      family: 4,
      table: 254,
      type: "unicast",
      dst: "5.6.7.0/24",
      gateway: "192.168.1.1",
      dev: "eth0",
      protocol: 3,
    } satisfies Route,
    // n2's rule, made by someone else.
    sameAsN2: { ...n2Rule, protocol: 4 } satisfies Rule,
    // Between the skip rule and its nop: every marked network's skip jumps over it.
    jumpedOver: {
      family: 4,
      priority: 1001,
      to: "198.51.100.0/24",
      action: "lookup",
      table: 7,
    } satisfies Rule,
  };
  const node = articleNode();
  const result = diffRouting(
    desired,
    {
      ...node,
      routes: [...node.routes, foreign.inN1Table, foreign.inDirectsWay],
      rules: [
        ...node.rules,
        ...desired.rules.filter((r) => r !== n2Rule),
        foreign.sameAsN2,
        foreign.jumpedOver,
      ],
    },
    own,
  );
  const byObject = (pattern: RegExp) => {
    const found = result.conflicts.filter((c) => pattern.test(c.object));
    assert.equal(found.length, 1, `${pattern}: ${JSON.stringify(result.conflicts)}`);
    return found[0]?.networks;
  };
  assert.equal(result.conflicts.length, 4, JSON.stringify(result.conflicts));
  assert.deepEqual(byObject(/9\.9\.9\.0\/24/), ["n1"]);
  assert.deepEqual(byObject(/5\.6\.7\.0\/24/), ["direct"]);
  assert.deepEqual(byObject(new RegExp(`^IPv4 rule ${n2Rule.priority}$`)), ["n2"]);
  assert.deepEqual(byObject(/198\.51\.100\.0\/24/), ["n0", "n1", "n2"]);
});
