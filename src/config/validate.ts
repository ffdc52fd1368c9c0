// From a parsed value (a YAML document, or a custom resource's spec) to a validated Config: every
// field through its schema (schema.ts), then the checks across fields (cross.ts). Fields are parsed
// one by one, and networks entry by entry, so that every problem is reported at once and the
// checks across fields see whatever is valid.

import { z } from "zod";
import { type Drafts, type NetworkDraft, checkAcrossFields, draftPool } from "./cross.ts";
import { type ConfigIssue, type ConfigPath, describe, quoteString } from "./issues.ts";
import { didYouMean } from "./suggest.ts";
import {
  type Config,
  configSchema,
  mappingKeys,
  networkList,
  networkSchema,
  toNetworkConfig,
} from "./schema.ts";

export type ConfigResult =
  /** `value`: the plain value the text holds (parseConfigText), for callers that merge into it. */
  { ok: true; config: Config; value?: unknown } | { ok: false; issues: ConfigIssue[] };

/** An issue before positions are known; `atKey` points it at the key rather than the value. */
export interface PendingIssue extends ConfigIssue {
  readonly atKey?: boolean;
}

type Mapping = Readonly<Record<string, unknown>>;

function isMapping(value: unknown): value is Mapping {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * A mapping without its null-valued keys: an empty value counts as not given. One level is enough:
 * the mappings inside a field (vlan, marks, a range) hold only scalars and lists.
 */
function withoutNulls(value: unknown): unknown {
  if (!isMapping(value)) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.getOwnPropertyNames(value)) {
    const v = value[key];
    // defineProperty: a "__proto__" key stays an own property, reported as unknown.
    if (v !== null && v !== undefined)
      Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** A key's value; null (an empty YAML value, `gateway:`) counts as not given. */
const own = (mapping: Mapping, key: string): unknown =>
  Object.hasOwn(mapping, key) ? withoutNulls(mapping[key] ?? undefined) : undefined;

/**
 * zod's issues as ours: one per path (the first), unknown keys one per key, a union's matching
 * branch. `base`: the field's path; its last key names the field, and with the issue's path the
 * mapping an unknown key is in (mappingKeys).
 */
function toIssues(error: z.ZodError, base: ConfigPath, out: PendingIssue[]): void {
  const seen = new Set(out.map((i) => JSON.stringify(i.path)));
  const add = (issue: PendingIssue): void => {
    const key = JSON.stringify(issue.path);
    if (issue.atKey !== true && seen.has(key)) return;
    seen.add(key);
    out.push(issue);
  };
  const fieldKey = base.at(-1);
  // `inField`: where the issues' paths start inside the field (a union's place for its branch's issues).
  const walk = (issues: readonly z.core.$ZodIssue[], inField: ConfigPath): void => {
    for (const issue of issues) {
      const at = [...inField, ...(issue.path as (string | number)[])];
      const path = [...base, ...at];
      if (issue.code === "unrecognized_keys") {
        const name = [fieldKey, ...at].filter((k) => typeof k === "string").join(".");
        const allowed = mappingKeys(name);
        for (const key of issue.keys)
          add({
            path: [...path, key],
            message: `unknown key ${quoteString(key)}; ${issue.message}${didYouMean(key, allowed, quoteString)}`,
            atKey: true,
          });
      } else if (issue.code === "invalid_union") {
        // The branch whose type fits the value: its issues say what is wrong inside it. zod gives
        // one list of issues per option, in the options' order.
        const branch = issue.errors.find(
          (e) => !e.some((i) => i.code === "invalid_type" && i.path.length === 0),
        );
        if (branch === undefined) add({ path, message: issue.message });
        else walk(branch, at);
      } else add({ path, message: issue.message });
    }
  };
  walk(error.issues, []);
}

/** Parse `value` with `schema`; the value, or undefined with the issues added to `out`. */
function field<T extends z.ZodType>(
  schema: T,
  value: unknown,
  path: ConfigPath,
  out: PendingIssue[],
): z.output<T> | undefined {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  toIssues(result.error, path, out);
  return undefined;
}

function unknownKeys(value: Mapping, shape: object, path: ConfigPath, out: PendingIssue[]): void {
  const allowed = Object.keys(shape);
  for (const key of Object.keys(value))
    if (!allowed.includes(key))
      out.push({
        path: [...path, key],
        message: `unknown key ${quoteString(key)}; allowed: ${allowed.join(", ")}${didYouMean(key, allowed, quoteString)}`,
        atKey: true,
      });
}

export type NetworkFields = z.output<typeof networkSchema>;
const NETWORK_SHAPE = networkSchema.shape;

/** One networks entry checked on its own: what the checks across fields need, and its fields when valid. */
export interface CheckedNetwork {
  readonly draft: NetworkDraft;
  readonly fields: NetworkFields | undefined;
}

/** How an entry of networks is checked: validateNetwork, or one that reuses earlier results (incremental.ts). */
export type NetworkChecker = (value: unknown, index: number, out: PendingIssue[]) => CheckedNetwork;

/** One network, field by field; its fields when all are valid. */
export function validateNetwork(value: unknown, index: number, out: PendingIssue[]): CheckedNetwork {
  const path = ["networks", index];
  if (!isMapping(value)) {
    out.push({
      path,
      message: `networks[${index}] must be a mapping with the keys ${Object.keys(NETWORK_SHAPE).join(", ")}; got ${describe(value)}`,
    });
    return { draft: { index, pools: [], poolsComplete: false } as NetworkDraft, fields: undefined };
  }
  unknownKeys(value, NETWORK_SHAPE, path, out);
  const before = out.length;
  const fields: Partial<NetworkFields> = {};
  for (const key of Object.keys(NETWORK_SHAPE) as (keyof NetworkFields)[])
    Object.assign(fields, { [key]: field(NETWORK_SHAPE[key], own(value, key), [...path, key], out) });
  const given = (key: string): boolean => own(value, key) !== undefined;
  const addresses = own(value, "addresses");
  const draft: NetworkDraft = {
    index,
    // The valid entries take part in the overlap checks even when others are wrong.
    pools:
      fields.addresses?.map((text, position) => draftPool(text, position)) ??
      (Array.isArray(addresses) ? addresses : []).flatMap((v, position) => {
        const r = NETWORK_SHAPE.addresses.element.safeParse(v);
        return r.success ? [draftPool(r.data, position)] : [];
      }),
    poolsComplete: fields.addresses !== undefined,
    name: fields.name,
    interface: fields.interface,
    gateways: given("gateway") ? fields.gateway : {},
    vlan: given("vlan") ? (fields.vlan ?? "invalid") : undefined,
    table: given("table") ? (fields.table ?? "invalid") : undefined,
    method: fields.method,
  };
  return { draft, fields: out.length === before ? (fields as NetworkFields) : undefined };
}

/**
 * A Kubernetes object given as the configuration (the shipped ConfigMap or a SymrouteNetwork, say):
 * what to give instead, ahead of the unknown keys it also has.
 */
function kubernetesManifest(value: Mapping): string | undefined {
  const kind = own(value, "kind");
  if (typeof kind !== "string" || typeof own(value, "apiVersion") !== "string") return undefined;
  const what = `this is a Kubernetes ${quoteString(kind)} object, not a symroute configuration`;
  if (kind === "ConfigMap")
    return `${what}: the configuration is the text of one of its data keys (config.yaml in deploy/configmap.yaml); give that text as a file of its own`;
  if (kind === "SymrouteNetwork")
    return `${what}: its spec is one network, which the agent takes from the cluster with --kubernetes; in a file, write it as an entry of networks`;
  return `${what}; docs/config.md shows the file's shape`;
}

/** Validate without positions; parseConfigText adds them. */
export function validatePending(
  value: unknown,
  checkNetwork: NetworkChecker = validateNetwork,
): { config?: Config; issues: PendingIssue[] } {
  const issues: PendingIssue[] = [];
  const shape = configSchema.shape;
  if (!isMapping(value)) {
    const keys = Object.keys(shape).join(", ");
    issues.push({
      path: [],
      message: `the configuration must be a mapping with the keys ${keys}; got ${describe(value)}`,
    });
    return { issues };
  }
  const manifest = kubernetesManifest(value);
  if (manifest !== undefined) issues.push({ path: [], message: manifest });
  unknownKeys(value, shape, [], issues);
  const at = (key: string): [unknown, ConfigPath, PendingIssue[]] => [own(value, key), [key], issues];
  const podCIDRs = field(shape.podCIDRs, ...at("podCIDRs"));
  const drafts: NetworkDraft[] = [];
  const networks: NetworkFields[] = [];
  const list = field(networkList(z.unknown()), ...at("networks"));
  list?.forEach((entry, i) => {
    const { draft, fields } = checkNetwork(entry, i, issues);
    drafts.push(draft);
    if (fields !== undefined) networks.push(fields);
  });
  const config = {
    podCIDRs,
    firewall: field(shape.firewall, ...at("firewall")),
    kubeProxyMode: field(shape.kubeProxyMode, ...at("kubeProxyMode")),
    rulePriorities: field(shape.rulePriorities, ...at("rulePriorities")),
    tables: field(shape.tables, ...at("tables")),
    marks: field(shape.marks, ...at("marks")),
    routeProtocol: field(shape.routeProtocol, ...at("routeProtocol")),
    stateDir: field(shape.stateDir, ...at("stateDir")),
  };
  const across: Drafts = { networks: drafts, ...config };
  issues.push(...checkAcrossFields(across));
  if (issues.length > 0) return { issues };
  const {
    podCIDRs: pods,
    firewall,
    kubeProxyMode,
    rulePriorities,
    tables,
    marks,
    routeProtocol,
    stateDir,
  } = config;
  if (
    pods === undefined ||
    firewall === undefined ||
    kubeProxyMode === undefined ||
    rulePriorities === undefined
  )
    return { issues };
  if (tables === undefined || marks === undefined || routeProtocol === undefined) return { issues };
  return {
    config: {
      podCIDRs: pods,
      networks: networks.map(toNetworkConfig),
      firewall,
      kubeProxyMode,
      rulePriorities,
      tables,
      marks,
      routeProtocol,
      ...(stateDir === undefined ? {} : { stateDir }),
    },
    issues,
  };
}

export function validateConfigObject(value: unknown): ConfigResult {
  return validateObjectWith(value, validateNetwork);
}

/** validateConfigObject with another checker of the networks entries (incremental.ts). */
export function validateObjectWith(value: unknown, checkNetwork: NetworkChecker): ConfigResult {
  const { config, issues } = validatePending(value, checkNetwork);
  if (config !== undefined) return { ok: true, config };
  if (issues.length === 0) {
    // Unreachable by construction; kept so a bug shows up as an issue, not as a crash.
    return {
      ok: false,
      issues: [{ path: ["networks"], message: "the configuration could not be validated" }],
    };
  }
  return { ok: false, issues: issues.map((i) => ({ path: i.path, message: i.message })) };
}
