// The configuration loader: text or a parsed object in, a validated Config or a list of issues out.
// Pure: no I/O; callers read the file (or the custom resource) and pass its content.

import { SymrouteError } from "../model/errors.ts";
import { counted } from "../model/plural.ts";
import { formatConfigIssues } from "./issues.ts";
import type { Config } from "./schema.ts";
import { parseConfigText } from "./text.ts";

export type { ConfigIssue, ConfigPath } from "./issues.ts";
export { formatConfigIssues, formatPath } from "./issues.ts";
export type { ConfigResult } from "./validate.ts";
export { validateConfigObject } from "./validate.ts";
export { parseConfigText } from "./text.ts";
export type { ConfigObjectMemo, ConfigTextMemo, IncrementalRead } from "./incremental.ts";
export { parseConfigTextReusing, validateConfigObjectReusing } from "./incremental.ts";
export { configJsonSchema } from "./crd-schema.ts";
export type {
  Config,
  FirewallChoice,
  KubeProxyMode,
  MarkSettings,
  Method,
  NetworkConfig,
  Range,
  Vlan,
} from "./schema.ts";
export { CONFIG_DEFAULTS } from "./schema.ts";
export { interfaceNameProblem } from "./names.ts";

export function loadConfigOrThrow(text: string, fileName: string): Config {
  const result = parseConfigText(text);
  if (result.ok) return result.config;
  throw new SymrouteError(
    "invalid-argument",
    `${fileName}: ${counted(result.issues.length, "problem")} in the configuration`,
    { details: formatConfigIssues(fileName, result.issues), hint: "see docs/config.md" },
  );
}
