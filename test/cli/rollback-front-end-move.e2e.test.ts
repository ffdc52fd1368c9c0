// A move of firewall front end that fails after both front ends were written is rolled back to the
// node as it was: nft's ARP probe table too (both front ends write `table arp symroute`, and the roll
// back emptied the new front end after it restored the old one, which deleted the table), and
// without the iptables mangle table the failed move made (iptables-nft makes it on first use; only
// a commit dropped it). The record keeps the old front end, so the next move removes it (before,
// it named the new one and the next run did not read the old one: both stayed in force). Real
// tools; the kernel refuses one rule of the ip batch (a wrapper turns it into a backward goto).

import { test } from "node:test";
import assert from "node:assert/strict";
import { createFaultTools } from "../reliability/support/fault-tools.ts";
import {
  assertSameDump,
  canonicalDump,
  configDir,
  createNode,
  e2eUnavailable,
  writeConfigFile,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-front-end-move-");

const networks = (firewall: string, count: number): string => `firewall: ${firewall}
networks:
${Array.from({ length: count }, (_, i) => `  - { name: n${i}, addresses: [1.2.${i}.0/24], interface: ext0, gateway: 1.2.${i}.1 }`).join("\n")}
`;

for (const [from, to] of [
  ["iptables", "nftables"],
  ["nftables", "iptables"],
] as const) {
  test(
    `a failed move from ${from} to ${to} leaves the node as it was; the next move leaves nothing of ${from}`,
    { skip },
    (t) => {
      const node = createNode(t);
      const tools = createFaultTools();
      t.after(() => tools.remove());
      const before = writeConfigFile(dir, `${from}.yaml`, networks(from, 1));
      const moved = writeConfigFile(dir, `${from}-to-${to}.yaml`, networks(to, 2));
      const start = node.dump();
      const applied = node.symroute(["apply", "-c", before]);
      assert.equal(applied.code, 0, applied.stdout + applied.stderr);
      assert.match(
        node.exec(["nft", "list", "table", "arp", "symroute"]).stdout,
        /arp saddr ip set 0\.0\.0\.0/,
      );
      const during = node.dump();
      const failed = node.symroute(
        ["apply", "-c", moved],
        tools.env({
          kind: "corrupt",
          tool: "ip",
          match: "^rule add .*lookup",
          sed: "s/lookup [0-9]+/goto 1/",
        }),
      );
      assert.equal(failed.code, 1, failed.stdout + failed.stderr);
      assert.match(failed.stderr, /apply failed and was rolled back/);
      // The same objects; iptables-nft lists the chains it made again in their new order.
      assertSameDump(canonicalDump(during), canonicalDump(node.dump()), "the node after the failed move");
      const again = node.symroute(["apply", "-c", moved]);
      assert.equal(again.code, 0, again.stdout + again.stderr);
      const listing =
        from === "iptables"
          ? node.exec(["iptables-save", "-t", "mangle"]).stdout
          : node.exec(["nft", "list", "ruleset", "inet"]).stdout;
      assert.doesNotMatch(listing, /symroute/i, `nothing of ${from} after the move`);
      const removed = node.symroute(["delete"]);
      assert.equal(removed.code, 0, removed.stdout + removed.stderr);
      assertSameDump(canonicalDump(start), canonicalDump(node.dump()), "the node after delete");
    },
  );
}
