// A Config back in the file shape: what the round-trip property tests feed back into the loader.

import { stringify } from "yaml";
import type { Config } from "../../src/config/schema.ts";

/** The file shape with every default written out; one gateway is a string, two are a list. */
export function configToDocument(config: Config): Record<string, unknown> {
  return {
    podCIDRs: [...config.podCIDRs],
    networks: config.networks.map((n) => {
      const gateways = [n.gateways[4], n.gateways[6]].filter((g): g is string => g !== undefined);
      return {
        name: n.name,
        addresses: [...n.addresses],
        interface: n.interface,
        ...(gateways.length === 0 ? {} : { gateway: gateways.length === 1 ? gateways[0] : gateways }),
        ...(n.vlan === undefined ? {} : { vlan: { parent: n.vlan.parent, id: n.vlan.id } }),
        ...(n.table === undefined ? {} : { table: n.table }),
        method: n.method,
      };
    }),
    firewall: config.firewall,
    kubeProxyMode: config.kubeProxyMode,
    rulePriorities: { ...config.rulePriorities },
    tables: { ...config.tables },
    marks: { mask: config.marks.mask, avoid: [...config.marks.avoid] },
    routeProtocol: config.routeProtocol,
    ...(config.stateDir === undefined ? {} : { stateDir: config.stateDir }),
  };
}

export function configToYaml(config: Config): string {
  return stringify(configToDocument(config), { lineWidth: 0 });
}
