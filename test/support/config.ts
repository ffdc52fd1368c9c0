// A config from YAML text for tests; a text the validator refuses is a test error, with its issues.

import { parseConfigText } from "../../src/config/index.ts";
import type { Config } from "../../src/config/schema.ts";

export function configFrom(yaml: string): Config {
  const result = parseConfigText(yaml);
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config;
}

/** The article's case 3 network: the pool 1.2.3.0/24 on ext0, via the router 1.2.3.1. */
export const PUBLIC_NETWORK = `networks:
  - name: public
    addresses: [1.2.3.0/24]
    interface: ext0
    gateway: 1.2.3.1
`;

/** PUBLIC_NETWORK in the article's cluster, its pods in 10.112.0.0/12. */
export const PUBLIC_NETWORK_WITH_PODS = `podCIDRs: [10.112.0.0/12]
${PUBLIC_NETWORK}`;

/**
 * The article's node's one gateway network, dual stack: pools of both families on ext0, a gateway
 * for each, with the firewall front end given, and the cluster's pod CIDRs when given.
 */
export const dualStackGatewayConfig = (firewall: string, podCIDRs?: readonly string[]): Config =>
  configFrom(`
firewall: ${firewall}
${podCIDRs === undefined ? "" : `podCIDRs: [${podCIDRs.join(", ")}]`}
networks:
  - name: public
    addresses: [1.2.3.0/24, "2001:db8:100::/64"]
    interface: ext0
    gateway: [1.2.3.1, "2001:db8:100::1"]
`);
