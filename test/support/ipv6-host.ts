// main's IPv6 routes of a node on eth0 (2001:db8:1::10/64): the link's prefix and one default route
// via 2001:db8:1::1, as router advertisements leave them (the simulator's and doctor's IPv6 tests).

import type { Route } from "../../src/model/state.ts";

export const ETH0_IPV6 = { ifname: "eth0", family: 6, local: "2001:db8:1::10", prefixlen: 64 } as const;

export function eth0Ipv6Routes(defaultProtocol?: number): Route[] {
  return [
    { family: 6, table: 254, type: "unicast", dst: "2001:db8:1::/64", dev: "eth0", protocol: 2, metric: 256 },
    {
      family: 6,
      table: 254,
      type: "unicast",
      dst: "default",
      gateway: "2001:db8:1::1",
      dev: "eth0",
      ...(defaultProtocol === undefined ? {} : { protocol: defaultProtocol }),
      metric: 1024,
    },
  ];
}
