// The nftables front end's transaction replaces symroute's tables whole (render/firewall-scripts.ts).
// Once it succeeded, a chain whose text is the same as in the agent's previous transaction lists as
// it did after that one (same nft, same kernel, same input), so verification needs to list only the
// chains whose text changed (read-cache.ts). These functions split a transaction and a listing by
// chain and put a listing together again.

import { ARP_KEY_PREFIX, arpKeyBackend } from "../model/firewall.ts";
import type { OwnedFirewall } from "../model/state.ts";
import type { ScriptChain } from "../render/nft-incremental.ts";

export { scriptChains, type ScriptChain } from "../render/nft-incremental.ts";

/** One rule of a listing (adapters/kernel.ts NftRule): the comment key and the content. */
export interface ListedRule {
  readonly key: string | undefined;
  readonly content: string;
}

/** The key the kernel adapter gives a listed line (nftRulesFromText): its comment. */
function keyOf(label: string, content: string): string | undefined {
  const line = content.slice(label.length + 2);
  if (line.startsWith("type ") || line.startsWith("policy ")) return undefined;
  const key = / comment "([^"]*)"$/.exec(line)?.[1] ?? `uncommented rule: ${line}`;
  return label.startsWith(ARP_KEY_PREFIX) ? `${ARP_KEY_PREFIX}${key}` : key;
}

const labelOf = (content: string): string => content.slice(0, content.indexOf(": "));

/**
 * A listing's lines by chain label; undefined when the keys derived from the lines are not the
 * listing's own (a rule without a comment, whose key held its counters): then it is listed whole.
 */
export function listingByChain(owned: OwnedFirewall): Map<string, string[]> | undefined {
  const contents = owned.contents ?? [];
  const byChain = new Map<string, string[]>();
  const keys: string[] = [];
  for (const content of contents) {
    const label = labelOf(content);
    if (label === "") return undefined;
    const list = byChain.get(label);
    if (list === undefined) byChain.set(label, [content]);
    else list.push(content);
    const key = keyOf(label, content);
    if (key !== undefined) keys.push(key);
  }
  if (keys.length !== owned.ruleKeys.length || keys.some((k, i) => k !== owned.ruleKeys[i])) return undefined;
  return byChain;
}

/** The chains of `next` that must be listed: new ones, and those whose text differs from `previous`'s. */
export function chainsToList(
  previous: ReadonlyMap<string, ScriptChain>,
  listed: ReadonlyMap<string, readonly string[]>,
  next: ReadonlyMap<string, ScriptChain>,
): string[] {
  const changed: string[] = [];
  for (const [label, { text }] of next) {
    if (previous.get(label)?.text === text && listed.has(label)) continue;
    changed.push(label);
  }
  return changed;
}

/**
 * A listed chain's rules as the nftables front end's read gives them: the ARP table's carry the
 * `arp:` prefix and only those of the nftables front end are kept (adapters/kernel.ts arpRulesOf).
 */
export function asListed(label: string, rules: readonly ListedRule[]): ListedRule[] {
  if (!label.startsWith(ARP_KEY_PREFIX)) return [...rules];
  return rules
    .filter((r) => r.key !== undefined && arpKeyBackend(r.key) === "nftables")
    .map((r) => ({ key: `${ARP_KEY_PREFIX}${r.key ?? ""}`, content: `${ARP_KEY_PREFIX}${r.content}` }));
}

/** The listing after `next` ran: the unchanged chains as listed before, the others as listed now. */
export function composeListing(
  listed: ReadonlyMap<string, readonly string[]>,
  next: ReadonlyMap<string, ScriptChain>,
  fresh: ReadonlyMap<string, readonly ListedRule[]>,
): OwnedFirewall {
  const ruleKeys: string[] = [];
  const contents: string[] = [];
  for (const label of next.keys()) {
    const rules = fresh.get(label);
    if (rules !== undefined) {
      for (const r of rules) {
        if (r.key !== undefined) ruleKeys.push(r.key);
        contents.push(r.content);
      }
      continue;
    }
    for (const content of listed.get(label) ?? []) {
      const key = keyOf(label, content);
      if (key !== undefined) ruleKeys.push(key);
      contents.push(content);
    }
  }
  return { backend: "nftables", ruleKeys, contents };
}
