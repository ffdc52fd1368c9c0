// Two IPv4 routes with one key (table, destination, tos, metric): the kernel keeps both when the
// second was appended, and an address's connected route is (measured, Linux 6.18: `ip addr add
// 10.9.8.5/24 dev ext0` after symroute's `10.9.8.0/24 dev ext0 proto 201` lists both, symroute's
// first). The diff compared the desired route with whichever the listing gave last: the kernel's,
// a "conflict" whose two routes read the same, so a network with method route never converged
// (apply exit 4, every run) once its interface got an address in the pool.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { Route } from "../../src/model/state.ts";
import { diffRouting } from "../../src/plan/diff.ts";
import { articleNode } from "../support/fake-kernel.ts";
import { configFrom } from "../support/config.ts";
import { desiredOnArticleNode, freshOwnership } from "../support/desired.ts";

const ROUTE_NETWORK = configFrom(`networks:
  - name: services
    addresses: [10.9.8.0/24]
    interface: ext0
    method: route
`);

const CONNECTED: Route = {
  family: 4,
  table: 254,
  type: "unicast",
  dst: "10.9.8.0/24",
  dev: "ext0",
  protocol: 2,
  scope: 253,
  prefsrc: "10.9.8.5",
};

test("symroute's route and an address's connected route with the same key: nothing to change, no conflict", () => {
  const desired = desiredOnArticleNode(ROUTE_NETWORK);
  const own = desired.routes.find((r) => r.dst === "10.9.8.0/24");
  assert.ok(own !== undefined);
  for (const routes of [
    [own, CONNECTED],
    [CONNECTED, own],
  ]) {
    const node = { ...articleNode(), routes: [...articleNode().routes, ...routes] };
    const result = diffRouting(desired, node, freshOwnership(ROUTE_NETWORK));
    assert.deepEqual(result.conflicts, [], JSON.stringify(routes));
    assert.deepEqual(
      result.changes.filter((c) => c.kind === "route"),
      [],
    );
  }
  // Without symroute's own, the connected route is still in the way of adding it.
  const alone = { ...articleNode(), routes: [...articleNode().routes, CONNECTED] };
  assert.equal(diffRouting(desired, alone, freshOwnership(ROUTE_NETWORK)).conflicts.length, 1);
});

test("another tool's route appended beside symroute's in a table symroute allocated is a conflict", () => {
  const config = configFrom(`networks:
  - name: public
    addresses: [1.2.3.0/24]
    interface: ext0
    gateway: 1.2.3.1
`);
  const desired = desiredOnArticleNode(config);
  const own = desired.routes.find((r) => r.table === 20000 && r.dst === "default");
  assert.ok(own !== undefined);
  const appended: Route = { ...own, gateway: "1.2.3.9", protocol: 4 };
  const node = { ...articleNode(), routes: [...articleNode().routes, ...desired.routes, appended] };
  const result = diffRouting(desired, node, freshOwnership(config));
  assert.equal(result.conflicts.length, 1, JSON.stringify(result.conflicts));
  assert.match(result.conflicts[0]?.object ?? "", /default via 1\.2\.3\.9 dev ext0 table 20000/);
  assert.deepEqual(
    result.changes.filter((c) => c.kind === "route"),
    [],
  );
});
