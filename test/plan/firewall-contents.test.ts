// The firewall's recorded contents against the kernel's listing (diffFirewall): the agent records a
// chain it rewrote as nft's monitor printed it, a cold read records `nft -t list`. The two print the
// elements of an anonymous set that is not an interval set differently (measured, nft 1.0.6 on
// Linux 6.18): the monitor in the order the script wrote them, the listing sorted (`icmpv6 type {
// nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert }`, the ARP probes' `"ext0" . ...`
// before `"ext1" . ...`, a verdict map by key). Order is no content: it must not read as drift.

import { test } from "node:test";
import assert from "node:assert/strict";
import { firewallRuleKeys } from "../../src/model/firewall.ts";
import { diffFirewall } from "../../src/plan/diff.ts";
import { dualStackGatewayConfig } from "../support/config.ts";
import { desiredOnArticleNode } from "../support/desired.ts";

const ND = `guard_ext0: icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } return comment "ext0 v6 neighbour discovery #7a5985f9"`;
const ND_LISTED = `guard_ext0: icmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } return comment "ext0 v6 neighbour discovery #7a5985f9"`;
const ARP = `arp:probes: arp operation request oifname . arp daddr ip { "ext1" . 5.6.8.1, "ext0" . 1.2.3.1 } arp saddr ip set 0.0.0.0 comment "nftables arp probes #41352bd6"`;
const ARP_LISTED = `arp:probes: arp operation request oifname . arp daddr ip { "ext0" . 1.2.3.1, "ext1" . 5.6.8.1 } arp saddr ip set 0.0.0.0 comment "nftables arp probes #41352bd6"`;
const VMAP = `restore: ct mark & 0x000000ff vmap { 0x00000002 : goto m0x2, 0x00000001 : goto m0x1 } comment "dispatch by mark #df61b972"`;
const VMAP_LISTED = `restore: ct mark & 0x000000ff vmap { 0x00000001 : goto m0x1, 0x00000002 : goto m0x2 } comment "dispatch by mark #df61b972"`;
const OTHER = `pre: type filter hook prerouting priority -199; policy accept;`;

function diffWith(record: readonly string[], listed: readonly string[]): ReturnType<typeof diffFirewall> {
  const desired = desiredOnArticleNode(dualStackGatewayConfig("nftables"));
  assert.ok(desired.firewall !== undefined);
  const ruleKeys = firewallRuleKeys(desired.firewall);
  return diffFirewall(desired, [{ backend: "nftables", ruleKeys, contents: [...listed] }], {
    nftables: [...record],
  });
}

test("a set's elements recorded as nft's monitor printed them and listed sorted are no drift", () => {
  assert.deepEqual(diffWith([OTHER, ND, ARP, VMAP], [OTHER, ND_LISTED, ARP_LISTED, VMAP_LISTED]), []);
  // Either way round: a record from a listing, a listing that kept the script's order.
  assert.deepEqual(diffWith([ND_LISTED, ARP_LISTED], [ND, ARP]), []);
});

test("a set that lost or changed an element is still drift", () => {
  const lost = ND_LISTED.replace("nd-router-advert, ", "");
  assert.equal(diffWith([OTHER, ND], [OTHER, lost]).length, 1);
  const changed = ARP_LISTED.replace("5.6.8.1", "5.6.8.9");
  assert.equal(diffWith([ARP], [changed]).length, 1);
  // The same elements outside the braces' order: a rule whose text differs otherwise.
  assert.equal(diffWith([ND], [ND_LISTED.replace(" return ", " drop ")]).length, 1);
});
