// Which networks a conflict concerns: the networks whose desired route or rule a foreign object is
// in the way of, so that each network's status shows its own conflicts (the agent's
// SymrouteNetwork status), not the node's.

import type { Family } from "../model/address.ts";
import { parsePrefix, prefixesOverlap } from "../model/address.ts";
import type { Route, Rule } from "../model/state.ts";
import type { NetworkDecision } from "./types.ts";

/** Tables every network may route through: a match there names no network. */
const SHARED_TABLES = new Set([0, 253, 254, 255]);
const MAIN = 254;

const ownTable = (d: NetworkDecision, table: number | undefined): boolean =>
  table !== undefined && !SHARED_TABLES.has(table) && d.table === table;

const poolsOverlap = (d: NetworkDecision, prefix: string | undefined): boolean => {
  const p = prefix === undefined ? undefined : parsePrefix(prefix);
  return (
    p !== undefined &&
    p.len > 0 &&
    d.pools.some((pool) => {
      const q = parsePrefix(pool);
      return q !== undefined && prefixesOverlap(p, q);
    })
  );
};

/** Names in decision order, each once; undefined when none (the conflict is the whole node's). */
function names(decisions: readonly NetworkDecision[]): readonly string[] | undefined {
  const out = [...new Set(decisions.map((d) => d.name))];
  return out.length === 0 ? undefined : out;
}

/** The networks a route belongs to: by its table, or in main (method route) by its destination. */
export function routeNetworks(
  decisions: readonly NetworkDecision[],
  route: Pick<Route, "family" | "table" | "dst">,
): readonly string[] | undefined {
  return names(
    decisions.filter(
      (d) =>
        d.family === route.family &&
        (ownTable(d, route.table) || (route.table === MAIN && poolsOverlap(d, route.dst))),
    ),
  );
}

/** The networks whose packets go past `family`'s fwmark rules (the skip rule exists for them). */
export function markedNetworks(
  decisions: readonly NetworkDecision[],
  family: Family,
): readonly string[] | undefined {
  return names(decisions.filter((d) => d.family === family && d.mark !== undefined));
}

/** The networks a desired rule belongs to: by its table, its mark or its source pools. */
export function ruleNetworks(
  decisions: readonly NetworkDecision[],
  rule: Rule,
): readonly string[] | undefined {
  if (rule.action === "goto" || rule.action === "nop") return markedNetworks(decisions, rule.family);
  return names(
    decisions.filter(
      (d) =>
        d.family === rule.family &&
        (ownTable(d, rule.table) ||
          (rule.fwmark !== undefined && rule.fwmark !== 0 && d.mark === rule.fwmark) ||
          poolsOverlap(d, rule.from)),
    ),
  );
}
