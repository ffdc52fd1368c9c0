// With the state file lost, the tables and marks symroute allocated are still on the node: each
// network's table holds symroute's route for its pool, and the fwmark rule that looks that table up
// carries its mark. Taken from there, a lost file moves nothing (allocated afresh in the config's
// order, a network after a removed one took the removed one's table and mark, silently stranding
// its open connections: src/plan/mark-moves.ts).

import type { Config } from "../config/schema.ts";
import { parsePrefix, type Prefix } from "../model/address.ts";
import { RESERVED_TABLES, type RoutingState } from "../model/state.ts";
import type { Allocation } from "./types.ts";

const prefixKey = (p: Prefix | undefined): string | undefined =>
  p === undefined ? undefined : `${p.family}|${p.value}|${p.len}`;

/** Per network: the table holding symroute's route for one of its pools, and that table's fwmark. */
export function recoveredAllocations(
  config: Config,
  node: RoutingState,
  owns: (protocol: number | undefined) => boolean,
): Record<string, Allocation> {
  const tableOfPool = new Map<string, number>();
  for (const r of node.routes) {
    if (!owns(r.protocol) || r.dst === "default" || RESERVED_TABLES.includes(r.table)) continue;
    const key = prefixKey(parsePrefix(r.dst));
    if (key !== undefined && !tableOfPool.has(key)) tableOfPool.set(key, r.table);
  }
  const markOfTable = new Map<number, number>();
  for (const r of node.rules) {
    if (!owns(r.protocol) || r.action !== "lookup" || r.table === undefined) continue;
    if (r.fwmark !== undefined && r.fwmark !== 0) markOfTable.set(r.table, r.fwmark);
  }
  const recovered: Record<string, Allocation> = {};
  for (const network of config.networks) {
    const table = network.addresses
      .map((a) => tableOfPool.get(prefixKey(parsePrefix(a)) ?? ""))
      .find((t) => t !== undefined);
    if (table === undefined) continue;
    const mark = markOfTable.get(table);
    recovered[network.name] = { table, ...(mark === undefined ? {} : { mark }) };
  }
  return recovered;
}
