// The configuration the agent converges to: the file (global settings and any local networks) plus
// the networks the cluster assigns to this node. Each cluster network is validated together with
// those accepted before it, so one bad object is refused alone (and its status says why) instead of
// taking every other network down with it.

import {
  type ConfigObjectMemo,
  type ConfigTextMemo,
  formatConfigIssues,
  parseConfigTextReusing,
  validateConfigObject,
  validateConfigObjectReusing,
} from "../config/index.ts";
import type { Config } from "../config/schema.ts";
import { networksFromCluster, type NetworkVerdict } from "./kubernetes/cluster.ts";
import type { ClusterSnapshot } from "./kubernetes/source.ts";

export type FileResult =
  | { readonly ok: true; readonly config: Config; readonly raw: Record<string, unknown> }
  | { readonly ok: false; readonly problems: readonly string[] };

/** The file as the agent uses it: validated on its own, and as a plain object to merge into. */
export function readConfigFile(text: string, fileName: string): FileResult {
  return rereadConfigFile(text, fileName).file;
}

/**
 * readConfigFile, given the memo of the last read: an edit re-reads only the networks entries it
 * changed (the result is the same); the memo to keep for the next read comes back beside it.
 */
export function rereadConfigFile(
  text: string,
  fileName: string,
  memo?: ConfigTextMemo,
): { readonly file: FileResult; readonly memo: ConfigTextMemo } {
  const { result, memo: next } = parseConfigTextReusing(text, memo);
  if (!result.ok)
    return { file: { ok: false, problems: formatConfigIssues(fileName, result.issues) }, memo: next };
  const raw = isRecord(result.value) ? result.value : {};
  return { file: { ok: true, config: result.config, raw }, memo: next };
}

/** With --kubernetes and no file: defaults for every global setting and no local networks. */
export const EMPTY_FILE: FileResult = (() => {
  const result = validateConfigObject({ networks: [] });
  if (!result.ok) throw new Error("the empty configuration does not validate");
  return { ok: true, config: result.config, raw: { networks: [] } };
})();

export interface MergedConfig {
  readonly config: Config;
  /** Cluster networks refused by the config validator, with the validator's words. */
  readonly refused: ReadonlyMap<string, string>;
  /** Pass to the next merge: the networks checked here are not checked again while unchanged. */
  readonly memo: ConfigObjectMemo;
}

export function mergeClusterNetworks(
  file: Extract<FileResult, { ok: true }>,
  verdicts: readonly NetworkVerdict[],
  memo?: ConfigObjectMemo,
): MergedConfig {
  const fileNetworks: unknown[] = Array.isArray(file.raw.networks) ? file.raw.networks : [];
  const fileNames = new Set(file.config.networks.map((n) => n.name));
  const accepted: unknown[] = [];
  const refused = new Map<string, string>();
  const selected: Extract<NetworkVerdict, { state: "selected" }>[] = [];
  for (const verdict of verdicts) {
    if (verdict.state !== "selected") continue;
    if (fileNames.has(verdict.network)) {
      refused.set(
        verdict.network,
        `the local config file already has a network named ${JSON.stringify(verdict.network)}`,
      );
      continue;
    }
    selected.push(verdict);
  }
  // Usually every network is valid: one validation of the whole list. Taking networks away never
  // makes a valid list invalid (overlaps, shared names and tables, mark room only grow with more),
  // so this is what the one-by-one loop below would accept, at the cost of one validation instead of
  // one per network (at 1,000 networks the loop validated half a million network entries).
  const { result: whole, memo: next } = validateConfigObjectReusing(
    { ...file.raw, networks: [...fileNetworks, ...selected.map((v) => v.entry)] },
    memo,
  );
  if (whole.ok) return { config: whole.config, refused, memo: next };
  let config = file.config;
  for (const verdict of selected) {
    const candidate = { ...file.raw, networks: [...fileNetworks, ...accepted, verdict.entry] };
    // Each entry was checked on its own in the whole list above: only the checks across networks rerun.
    const { result } = validateConfigObjectReusing(candidate, next);
    if (result.ok) {
      accepted.push(verdict.entry);
      config = result.config;
    } else {
      const index = fileNetworks.length + accepted.length;
      const mine = result.issues.filter(
        (i) => i.path.length === 0 || (i.path[0] === "networks" && i.path[1] === index),
      );
      const issues = mine.length > 0 ? mine : result.issues;
      const lines = formatConfigIssues(
        `SymrouteNetwork/${verdict.network}`,
        issues.map((i) => ({
          ...i,
          path: i.path[0] === "networks" && i.path[1] === index ? ["spec", ...i.path.slice(2)] : i.path,
        })),
      );
      refused.set(verdict.network, lines.join("; "));
    }
  }
  return { config, refused, memo: next };
}

/** The configuration for this node from the file and the cluster's view, with how it was made. */
export interface ClusterConfig {
  readonly file: Extract<FileResult, { ok: true }>;
  /** What each SymrouteNetwork means for this node. */
  readonly verdicts: readonly NetworkVerdict[];
  /** The verdicts as text: an unchanged cluster view gives the same key. */
  readonly key: string;
  readonly merged: MergedConfig;
}

/**
 * What the agent converges to with --kubernetes, and what `plan --kubernetes` and
 * `doctor --kubernetes` show: the file's settings and networks plus the cluster's networks for this
 * node. `last` (the agent's previous result) is returned as it is while neither the file nor the
 * verdicts changed, and its memo spares the merge the networks it checked already.
 */
export function configFromCluster(
  file: Extract<FileResult, { ok: true }>,
  snapshot: ClusterSnapshot,
  last?: ClusterConfig,
): ClusterConfig {
  const verdicts = networksFromCluster(snapshot);
  const key = JSON.stringify(verdicts);
  if (last !== undefined && last.file === file && last.key === key) return last;
  return { file, verdicts, key, merged: mergeClusterNetworks(file, verdicts, last?.merged.memo) };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
