// A conflict's fix must remove the foreign object and nothing else. `ip rule del priority N` alone
// deletes the first rule at N, symroute's own when it is listed first (seen on a node: following
// the printed fix took symroute's fwmark rule away and left the foreign one). And at one priority
// the kernel tries rules in list order, so a foreign rule listed after symroute's is not in its way.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { Route, Rule } from "../../src/model/state.ts";
import { diffRouting } from "../../src/plan/diff.ts";
import { articleNode } from "../support/fake-kernel.ts";
import { configFrom } from "../support/config.ts";
import { desiredOnArticleNode, freshOwnership } from "../support/desired.ts";

const cfg = configFrom(`
networks:
  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
`);
const desired = desiredOnArticleNode(cfg);
const own = freshOwnership(cfg);
const ours = desired.rules.find((r) => r.fwmark !== undefined);
assert.ok(ours !== undefined);
// `ip rule add priority 1001 from 5.5.5.5 lookup 100` by hand: protocol unspec (0).
const foreign: Rule = {
  family: 4,
  priority: ours.priority,
  from: "5.5.5.5",
  ipproto: 6,
  action: "lookup",
  table: 100,
  protocol: 0,
};

function conflictsWith(rules: readonly Rule[], routes: readonly Route[] = []) {
  const node = articleNode();
  return diffRouting(
    desired,
    { ...node, rules: [...node.rules, ...rules], routes: [...node.routes, ...routes] },
    own,
  ).conflicts;
}

test("a foreign rule at symroute's priority, listed first: a conflict whose fix names that rule alone", () => {
  for (const rules of [[foreign], [foreign, ours]]) {
    const conflicts = conflictsWith(rules);
    assert.equal(conflicts.length, 1, JSON.stringify(conflicts));
    const reason = conflicts[0]?.reason ?? "";
    assert.match(reason, /the kernel tries it before symroute's rule/);
    assert.ok(
      reason.includes(`remove it (ip rule del priority ${ours.priority} from 5.5.5.5 ipproto 6 lookup 100)`),
      reason,
    );
    assert.doesNotMatch(reason, /rule del priority \d+\)/, "never the priority alone");
  }
});

test("a foreign rule at symroute's priority listed after symroute's is tried after it: no conflict", () => {
  const result = diffRouting(
    desired,
    { ...articleNode(), rules: [...articleNode().rules, ours, foreign] },
    own,
  );
  assert.deepEqual(result.conflicts, []);
  assert.ok(
    result.notices.some((n) => /is not symroute's but sits in its priority band/.test(n)),
    JSON.stringify(result.notices),
  );
});

test("a foreign route in symroute's table: the fix gives its gateway, device and protocol, not only the destination", () => {
  const route: Route = {
    family: 4,
    table: desired.decisions[0]?.table ?? 0,
    type: "unicast",
    dst: "default",
    gateway: "1.2.3.99",
    dev: "ext0",
    metric: 100,
    protocol: 3,
  };
  const conflicts = conflictsWith([], [route]);
  const reason = conflicts.find((c) => c.object.includes("1.2.3.99"))?.reason ?? "";
  assert.ok(
    reason.includes(
      `remove it (ip route del default via 1.2.3.99 dev ext0 table ${route.table} metric 100 proto 3)`,
    ),
    reason,
  );
});

test("a foreign copy of symroute's own rule: the fix removes that copy, which a later apply replaces", () => {
  const copy: Rule = { ...ours, protocol: 4 };
  const conflicts = conflictsWith([copy]);
  assert.equal(conflicts.length, 1, JSON.stringify(conflicts));
  assert.equal(conflicts[0]?.object, `IPv4 rule ${ours.priority}`);
  assert.equal(
    conflicts[0]?.reason,
    `an identical rule exists that symroute did not create (priority ${ours.priority} fwmark 0x1/0xff lookup ${ours.table} proto 4); if no other tool needs it, remove it (ip rule del priority ${ours.priority} fwmark 0x1/0xff lookup ${ours.table} proto 4) and apply: symroute then adds its own`,
  );
});
