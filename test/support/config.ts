// A config from YAML text for tests; a text the validator refuses is a test error, with its issues.

import { parseConfigText } from "../../src/config/index.ts";
import type { Config } from "../../src/config/schema.ts";

export function configFrom(yaml: string): Config {
  const result = parseConfigText(yaml);
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config;
}

/**
 * The article's node's one gateway network, dual stack: pools of both families on ext0, a gateway
 * for each, with the firewall front end given.
 */
export const dualStackGatewayConfig = (firewall: string): Config =>
  configFrom(`
firewall: ${firewall}
networks:
  - name: public
    addresses: [1.2.3.0/24, "2001:db8:100::/64"]
    interface: ext0
    gateway: [1.2.3.1, "2001:db8:100::1"]
`);
