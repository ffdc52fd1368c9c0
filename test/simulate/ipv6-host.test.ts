// IPv6 with forwarding off (a host): the kernel prefers routes whose gateway's neighbour entry is
// reachable, among the routes of the deepest prefix and, backtracking, shorter prefixes of the same
// table, and looks again without the preference when none is. The snapshot holds no neighbour
// table, so the simulator tells a route only when there is nothing to choose: a lone route with a
// gateway and no shorter prefix under it (src/simulate/trace.ts, lookupTable).

import { test } from "node:test";
import assert from "node:assert/strict";
import type { NodeState, Route } from "../../src/model/state.ts";
import { compileRoutingState } from "../../src/simulate/compile.ts";
import { tracePacket } from "../../src/simulate/trace.ts";
import { ETH0_IPV6, eth0Ipv6Routes } from "../support/ipv6-host.ts";

/** A host on eth0 (2001:db8:1::10/64) with a default route via 2001:db8:1::1, and `extra` routes in main. */
function host(forwarding: "0" | "1", extra: readonly Route[] = []): NodeState {
  return {
    links: [
      { ifname: "lo", ifindex: 1, up: true },
      { ifname: "eth0", ifindex: 2, up: true },
    ],
    addresses: [ETH0_IPV6],
    rules: [
      { family: 6, priority: 0, action: "lookup", table: 255 },
      { family: 6, priority: 32766, action: "lookup", table: 254 },
    ],
    routes: [
      { family: 6, table: 255, type: "local", dst: "2001:db8:1::10", dev: "eth0", protocol: 2 },
      ...eth0Ipv6Routes(),
      ...extra,
    ],
    sysctls: { "net/ipv6/conf/all/forwarding": forwarding },
    firewall: [],
  };
}

/** A /48 via a second router: with forwarding off, passed over for the default when its neighbour is not reachable. */
const VIA_SECOND: Route = {
  family: 6,
  table: 254,
  type: "unicast",
  dst: "2001:db8:77::/48",
  gateway: "2001:db8:1::2",
  dev: "eth0",
  metric: 1024,
};

test("forwarding off: a lone default route with a gateway and nothing shorter is told", () => {
  const trace = tracePacket(compileRoutingState(host("0")), { to: "2001:db8:77::1" });
  assert.equal(trace.result, "unicast", JSON.stringify(trace));
  assert.equal(trace.gateway, "2001:db8:1::1");
});

test("forwarding off: a route with a gateway and a shorter prefix under it is not told (the kernel may backtrack)", () => {
  const index = compileRoutingState(host("0", [VIA_SECOND]));
  const under = tracePacket(index, { to: "2001:db8:77::1" });
  assert.equal(under.result, "unsupported", JSON.stringify(under));
  assert.match(under.reason ?? "", /IPv6 forwarding is off/);
  // A destination the /48 does not cover: the default alone, told.
  const beside = tracePacket(index, { to: "2001:db8:99::1" });
  assert.equal(beside.result, "unicast", JSON.stringify(beside));
  assert.equal(beside.gateway, "2001:db8:1::1");
});

test("forwarding on: the deepest prefix's route, whatever its gateway's neighbour", () => {
  const trace = tracePacket(compileRoutingState(host("1", [VIA_SECOND])), { to: "2001:db8:77::1" });
  assert.equal(trace.result, "unicast", JSON.stringify(trace));
  assert.equal(trace.gateway, "2001:db8:1::2");
});
