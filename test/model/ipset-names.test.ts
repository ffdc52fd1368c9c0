// Which ipset names are symroute's: exactly those it makes (`symroute-{c,g}{4,6}-DIGEST`, and the
// temporary `-t` set each is filled in before the swap, which a failed fill can leave behind).
// The format has not changed since symroute made its first sets (fc910e5), so the names older
// nodes hold are these too. Anything else under the prefix is someone else's: destroyed as stale,
// a set a foreign iptables rule uses failed every apply.

import { test } from "node:test";
import assert from "node:assert/strict";
import { ipsetsOf, type FirewallSpec } from "../../src/model/firewall.ts";
import { ipsetNameToken, isSymrouteIpsetName } from "../../src/model/tokens.ts";
import { renderIpsetFill, renderIpsetRemove } from "../../src/render/firewall-scripts.ts";

const SPEC: FirewallSpec = {
  backend: "iptables",
  mask: 0xff,
  entries: [
    { network: "red", family: 4, iif: "ext0", pools: ["1.2.3.0/24"], value: 1 },
    { network: "red", family: 6, iif: "ext0", pools: ["2001:db8:4::/64"], value: 1 },
  ],
  guards: [
    { family: 4, iif: "ext0", mode: "strict", exempt: ["1.2.3.0/24"], reason: "r" },
    { family: 6, iif: "ext0", mode: "strict", exempt: ["2001:db8:4::/64"], reason: "r" },
  ],
};
const made = ipsetsOf(SPEC).map((s) => s.name);

test("every set symroute makes, and the temporary set it fills first, is symroute's", () => {
  assert.deepEqual(
    made.map((n) => n.replace(/[0-9a-f]{8}$/, "D")),
    ["symroute-c4-D", "symroute-g4-D", "symroute-c6-D", "symroute-g6-D"],
  );
  const filled = [...(renderIpsetFill(SPEC) ?? "").matchAll(/^create (\S+)/gm)].map((m) => m[1] as string);
  assert.deepEqual(
    filled,
    made.flatMap((n) => [`${n}-t`, n]),
  );
  for (const name of filled) assert.ok(isSymrouteIpsetName(name), name);
});

const OURS = [
  // As earlier versions made them (same format since the first sets): a node upgraded keeps them clean.
  "symroute-c4-00000000",
  "symroute-g6-ffffffff",
  "symroute-c6-0a1b2c3d",
  "symroute-g4-9e3779b9-t",
];
const FOREIGN = [
  "symroute-backup",
  "symroute-a.b",
  "symroute-c4",
  "symroute-c4-",
  "symroute-c4-1234567",
  "symroute-c4-123456789",
  "symroute-c4-ABCDEF12",
  "symroute-c5-12345678",
  "symroute-x4-12345678",
  "symroute-cg4-12345678",
  "symroute-c4-12345678-tmp",
  "symroute-c4-12345678-t-t",
  "symroute-c4-12345678-",
  "symroute-",
  "Symroute-c4-12345678",
  "my-symroute-c4-12345678",
  "symroute-c4-12345678\n",
];

for (const name of OURS)
  test(`${JSON.stringify(name)} is symroute's`, () => assert.equal(isSymrouteIpsetName(name), true));
for (const name of FOREIGN)
  test(`${JSON.stringify(name)} is someone else's`, () => {
    assert.equal(isSymrouteIpsetName(name), false);
    assert.throws(() => ipsetNameToken(name));
  });

test("symroute's sets no longer asked for are destroyed, older ones and leftover temporary sets too", () => {
  // The reader passes only names isSymrouteIpsetName accepts: a foreign one never gets here.
  const present = [...made, "symroute-c4-00000000", "symroute-g4-9e3779b9-t"];
  assert.equal(
    renderIpsetRemove(SPEC, present),
    "destroy symroute-c4-00000000\ndestroy symroute-g4-9e3779b9-t\n",
  );
});
