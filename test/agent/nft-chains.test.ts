// What nft's monitor printed of one of the agent's transactions, by chain (src/agent/nft-chains.ts):
// a base chain's declaration from its `add chain` line, none for a regular chain.

import { test } from "node:test";
import assert from "node:assert/strict";
import { printedByChain } from "../../src/agent/nft-chains.ts";

test("printedByChain: rules by chain label, a base chain's declaration, none for a regular chain, other tables left out", () => {
  const printed = printedByChain([
    "add table inet symroute",
    "add chain inet symroute pre { type filter hook prerouting priority mangle; policy accept; }",
    "add chain inet symroute classify",
    'add rule inet symroute pre handle 4 jump classify comment "pre"',
    'add rule inet symroute classify meta mark set 0x100 comment "classify"',
    "add chain arp symroute probe { type filter hook input priority filter; policy accept; }",
    'add rule arp symroute probe counter packets 0 bytes 0 comment "probe"',
    'add rule ip kube-proxy services counter comment "not ours"',
    "# new generation 2 by process 4242 (nft)",
  ]);
  assert.deepEqual(
    [...printed.entries()],
    [
      [
        "pre",
        {
          rules: ['handle 4 jump classify comment "pre"'],
          declaration: "type filter hook prerouting priority mangle; policy accept;",
        },
      ],
      ["classify", { rules: ['meta mark set 0x100 comment "classify"'] }],
      [
        "arp:probe",
        {
          rules: ['counter packets 0 bytes 0 comment "probe"'],
          declaration: "type filter hook input priority filter; policy accept;",
        },
      ],
    ],
  );
  assert.equal(Object.hasOwn(printed.get("classify") ?? {}, "declaration"), false, "unset, not empty");
});
