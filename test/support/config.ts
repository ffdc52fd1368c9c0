// A config from YAML text for tests; a text the validator refuses is a test error, with its issues.

import { parseConfigText } from "../../src/config/index.ts";
import type { Config } from "../../src/config/schema.ts";

export function configFrom(yaml: string): Config {
  const result = parseConfigText(yaml);
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config;
}
