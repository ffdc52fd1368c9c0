// Generated network entries for the property tests (fast-check): IPv4 and/or IPv6 pools, a /24 or a
// single address, with or without a gateway, on one of the given interfaces or on a VLAN symroute
// creates on it (id 7: networks on the same parent share it, as the config requires).

import fc from "fast-check";

export const networkArb = (i: number, interfaces: readonly string[]) =>
  fc
    .record({
      iface: fc.constantFrom(...interfaces),
      v4: fc.boolean(),
      v6: fc.boolean(),
      gateway: fc.boolean(),
      single: fc.boolean(),
      vlan: fc.boolean(),
    })
    .map((n) => {
      const addresses: string[] = [];
      const gateway: string[] = [];
      if (n.v4 || !n.v6) {
        addresses.push(n.single ? `100.64.${i}.7` : `100.64.${i}.0/24`);
        if (n.gateway) gateway.push(n.single ? `100.65.${i}.1` : `100.64.${i}.1`);
      }
      if (n.v6) {
        addresses.push(`2001:db8:${i}::/64`);
        if (n.gateway) gateway.push(`2001:db8:${i}::1`);
      }
      return {
        name: `net-${i}`,
        addresses,
        ...(n.vlan
          ? { interface: `${n.iface}.7`, vlan: { parent: n.iface, id: 7 } }
          : { interface: n.iface }),
        ...(gateway.length > 0 ? { gateway } : {}),
      };
    });
