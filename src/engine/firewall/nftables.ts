// The nftables front end: symroute's own `inet` and `arp` tables, replaced whole by one `nft -f`.

import { renderNftablesPayloads } from "../../render/payloads.ts";
import type { FirewallFrontEnd } from "./front-end.ts";

export const nftablesFrontEnd: FirewallFrontEnd = {
  name: "nftables",
  render: (spec) => renderNftablesPayloads(spec),
  // Its tables are replaced whole, whatever they hold.
  rendersFromNode: false,
  // nft itself is what chose this front end.
  missing: () => undefined,
  // The iptables front end's ARP table is an nft payload too; it says whose it is.
  owns: (payload) => payload.tool === "nft" && payload.frontEnd === undefined,
  run: (kernel, payload) => kernel.runNft(payload.script),
  // Its tables are symroute's own, and a removal deletes them: nothing else to clean up.
  cleanUp: async () => {},
  // Its tables are named symroute's and go with its objects (delete removes them whole).
  toCreate: async () => ({ tables: [], chains: [] }),
  made: () => ({ tables: [], chains: [] }),
};
