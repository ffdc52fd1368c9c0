// settledIpJson, shared by the lab's snapshot and the test harness's dump: what a link does by
// itself (carrier, DAD, lifetimes, timers) compares equal; what configuration does does not.

import { test } from "node:test";
import assert from "node:assert/strict";
import { settledIpJson } from "../../src/lab/snapshot.ts";

const link = (over: Record<string, unknown>, address: Record<string, unknown> = {}): string =>
  JSON.stringify([
    {
      ifname: "ext0",
      flags: ["BROADCAST", "MULTICAST", "UP"],
      operstate: "UP",
      linkinfo: { info_kind: "bridge", info_data: { hello_timer: 1.5, stp_state: 0 } },
      addr_info: [
        { family: "inet6", local: "2001:db8::1", prefixlen: 64, valid_life_time: 4294967295, ...address },
      ],
      ...over,
    },
  ]);

test("carrier, operstate, DAD flags, lifetimes and timers settle", () => {
  const fresh = link(
    { flags: ["NO-CARRIER", "BROADCAST", "MULTICAST", "UP"], operstate: "DOWN" },
    { tentative: true, valid_life_time: 3600, preferred_life_time: 3600 },
  );
  const later = link(
    {
      flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
      linkinfo: { info_kind: "bridge", info_data: { hello_timer: 0.2, stp_state: 0 } },
    },
    { valid_life_time: 3000 },
  );
  assert.equal(settledIpJson(fresh), settledIpJson(later));
  const route = (flags: string[]): string => JSON.stringify([{ dst: "1.2.3.0/24", dev: "ext0", flags }]);
  assert.equal(settledIpJson(route(["linkdown"])), settledIpJson(route([])));
});

test("configuration does not settle away", () => {
  assert.notEqual(settledIpJson(link({})), settledIpJson(link({}, { local: "2001:db8::2" })));
  assert.notEqual(settledIpJson(link({})), settledIpJson(link({ flags: ["BROADCAST", "MULTICAST"] })));
  assert.notEqual(
    settledIpJson(link({})),
    settledIpJson(link({ linkinfo: { info_kind: "bridge", info_data: { hello_timer: 1.5, stp_state: 1 } } })),
  );
});
