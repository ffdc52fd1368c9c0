// doctor's checks below routing (issue 13 item 5): the next hop's resolution on a pool's interface
// without an address in its subnet (KERNEL-FACTS 10), and the anti-spoofing of a pool's interface
// (KERNEL-FACTS 5, 11), each on the article's node in the states a user meets.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { Neighbour, NodeState } from "../../src/model/state.ts";
import type { FirewallSpec } from "../../src/model/firewall.ts";
import type { NetworkDecision } from "../../src/plan/types.ts";
import { nodeChecks, type NodeCheckFinding } from "../../src/verify/node-checks.ts";
import { articleNode } from "../support/fake-kernel.ts";

const APPLY = "symroute apply -c /etc/symroute/config.yaml";

const CASE3: NetworkDecision = {
  name: "public",
  family: 4,
  pools: ["1.2.3.0/24"],
  interface: "ext0",
  gateway: "1.2.3.1",
  case: "policy-routing",
  method: "connmark",
  reason: "",
  table: 100,
  mark: 0x100,
};
const CASE3_V6: NetworkDecision = {
  ...CASE3,
  name: "public6",
  family: 6,
  pools: ["2001:db8:1::/64"],
  gateway: "2001:db8:1::1",
};

const WITH_FIX: FirewallSpec = {
  backend: "nftables",
  mask: 0x100,
  entries: [],
  guards: [
    { family: 4, iif: "ext0", mode: "strict", exempt: ["1.2.3.0/24"], reason: "" },
    { family: 6, iif: "ext0", mode: "strict", exempt: ["2001:db8:1::/64"], reason: "" },
  ],
  arpProbes: [{ oif: "ext0", targets: ["1.2.3.1"], reason: "" }],
};

function node(changes: Partial<NodeState> & { sysctls?: Record<string, string> } = {}): NodeState {
  const n = articleNode();
  return { ...n, neighbours: [], ...changes, sysctls: { ...n.sysctls, ...changes.sysctls } };
}

function check(
  n: NodeState,
  decisions: readonly NetworkDecision[] = [CASE3],
  firewall: FirewallSpec | undefined = undefined,
  firewallInPlace = false,
): NodeCheckFinding[] {
  return nodeChecks({ node: n, decisions, firewall, firewallInPlace, applyCommand: APPLY });
}

const one = (fs: NodeCheckFinding[], path: string, family = 4): NodeCheckFinding => {
  const f = fs.find((x) => x.path === path && x.family === family);
  assert.ok(f !== undefined, `no ${path} finding: ${JSON.stringify(fs, null, 2)}`);
  return f;
};

const neigh = (dst: string, state: string, lladdr?: string): Neighbour => ({
  ifname: "ext0",
  family: 4,
  dst,
  ...(lladdr === undefined ? {} : { lladdr }),
  state: [state],
});

test("an INCOMPLETE or FAILED gateway on an interface without an address in its subnet is found, with the fix", () => {
  for (const state of ["INCOMPLETE", "FAILED"]) {
    const f = one(check(node({ neighbours: [neigh("1.2.3.1", state)] })), "gateway");
    assert.equal(f.ok, false);
    assert.match(
      f.summary,
      new RegExp(`gateway 1\\.2\\.3\\.1 is not resolved on ext0 \\(neighbour 1\\.2\\.3\\.1 ${state}\\)`),
    );
    assert.match(f.cause ?? "", /ARP requests carry 192\.168\.1\.10 \(from eth0\) as sender/);
    assert.ok(f.fix?.startsWith(`\`${APPLY}\``), f.fix);
    assert.match(f.fix ?? "", /RFC 5227 probes/);
  }
});

test("strict ARP with no usable sender is found before any traffic; without strict ARP only a warning", () => {
  const lax = one(check(node()), "gateway");
  assert.equal(lax.ok, true);
  assert.match(
    lax.summary,
    /not resolved yet; ARP requests on ext0 would carry 192\.168\.1\.10 \(from eth0\) \(arp_announce 0\), which routers that check ARP senders ignore/,
  );
  // Ok, but flagged: a warning names the risk and symroute's probes as the way out.
  assert.match(lax.warning ?? "", /a router that checks ARP senders would ignore the node's requests/);
  assert.match(lax.warning ?? "", /RFC 5227 probes/);

  const strict = one(check(node({ sysctls: { "net/ipv4/conf/all/arp_announce": "2" } })), "gateway");
  assert.equal(strict.ok, false);
  assert.match(strict.summary, /cannot be resolved from ext0: no usable ARP sender/);
  assert.match(
    strict.cause ?? "",
    /strict ARP \(arp_announce 2\) takes the ARP sender from another interface: 192\.168\.1\.10/,
  );
  // The per-interface value counts too: effective is max(all, ext0).
  const own = one(check(node({ sysctls: { "net/ipv4/conf/ext0/arp_announce": "2" } })), "gateway");
  assert.equal(own.ok, false);

  // IPVS before strict ARP: the LB address on kube-ipvs0 is the sender (fact 10: works by hand).
  const ipvs = node();
  const lbLocal: NodeState = {
    ...ipvs,
    addresses: [...ipvs.addresses, { ifname: "kube-ipvs0", family: 4, local: "1.2.3.4", prefixlen: 32 }],
  };
  const f = one(check(lbLocal), "gateway");
  assert.equal(f.ok, true, JSON.stringify(f));
  assert.match(f.summary, /would carry 1\.2\.3\.4 \(a local LB address, on kube-ipvs0\)/);
  assert.equal(f.warning, undefined, "a usable sender is no warning");
  const strictIpvs = one(
    check({ ...lbLocal, sysctls: { ...lbLocal.sysctls, "net/ipv4/conf/all/arp_announce": "2" } }),
    "gateway",
  );
  assert.equal(strictIpvs.ok, false);
});

test("a resolved gateway, an address in the subnet, or symroute's probes in place are fine", () => {
  const reachable = one(
    check(node({ neighbours: [neigh("1.2.3.1", "REACHABLE", "02:00:00:00:00:01")] })),
    "gateway",
  );
  assert.equal(reachable.ok, true);
  const pinned = one(
    check(node({ neighbours: [neigh("1.2.3.1", "PERMANENT", "02:00:00:00:00:01")] })),
    "gateway",
  );
  assert.equal(pinned.ok, true);
  assert.match(pinned.summary, /pinned by hand/);
  assert.match(pinned.warning ?? "", /PERMANENT.*ip neigh del 1\.2\.3\.1 dev ext0/);
  assert.equal(reachable.warning, undefined);
  const base = node();
  const addressed = one(
    check({
      ...base,
      addresses: [...base.addresses, { ifname: "ext0", family: 4, local: "1.2.3.2", prefixlen: 24 }],
    }),
    "gateway",
  );
  assert.equal(addressed.ok, true);
  assert.match(addressed.summary, /ext0 has 1\.2\.3\.2\/24 in that subnet/);
  const probing = one(
    check(node({ sysctls: { "net/ipv4/conf/all/arp_announce": "2" } }), [CASE3], WITH_FIX, true),
    "gateway",
  );
  assert.equal(probing.ok, true);
  assert.match(probing.summary, /RFC 5227 probes/);
  // Wanted but not on the node: still broken.
  const pending = one(
    check(node({ sysctls: { "net/ipv4/conf/all/arp_announce": "2" } }), [CASE3], WITH_FIX, false),
    "gateway",
  );
  assert.equal(pending.ok, false);
});

test("on-link clients (case 2) are next hops too; IPv6 and networks symroute leaves alone are not checked", () => {
  const onLink: NetworkDecision = {
    ...CASE3,
    gateway: undefined,
    method: "route",
    case: "route",
    name: "lan",
  } as NetworkDecision;
  const f = one(check(node({ neighbours: [neigh("1.2.3.77", "FAILED")] }), [onLink]), "gateway");
  assert.equal(f.ok, false);
  assert.match(f.summary, /on-link clients in 1\.2\.3\.0\/24 is not resolved/);
  assert.equal(
    check(withLinkLocal(node()), [CASE3_V6]).some((x) => x.path === "gateway"),
    false,
  );
  assert.deepEqual(check(node(), [{ ...CASE3, method: "none", case: "nothing-to-do" }]), []);
});

/** The node with the link-local address the kernel gives ext0 when IPv6 and address generation are on. */
const withLinkLocal = (n: NodeState): NodeState => ({
  ...n,
  addresses: [
    ...n.addresses,
    { ifname: "ext0", family: 6, local: "fe80::5e:ff:fe00:410", prefixlen: 64, scope: "link" },
  ],
});

test("IPv6: a pool's interface without a link-local address sends no neighbour solicitation: the gateway cannot be resolved", () => {
  // Measured: with ext0's link-local address gone (addrgenmode none), the gateway's entry stays
  // INCOMPLETE and no solicitation reaches the router; replies to the pool are lost.
  for (const neighbours of [[], [{ ...neigh("2001:db8:1::1", "INCOMPLETE"), family: 6 as const }]]) {
    const f = one(check(node({ neighbours }), [CASE3_V6]), "gateway", 6);
    assert.equal(f.ok, false);
    assert.match(
      f.summary,
      /gateway 2001:db8:1::1 cannot be resolved from ext0: it has no IPv6 link-local address/,
    );
    assert.match(f.cause ?? "", /only from a link-local address of the interface/);
    assert.match(
      f.fix ?? "",
      /sysctl -w net\.ipv6\.conf\.ext0\.disable_ipv6=0 net\.ipv6\.conf\.ext0\.addr_gen_mode=0/,
    );
  }
  // Case 2's on-link clients are next hops too.
  const onLink = { ...CASE3_V6, gateway: undefined, method: "route", case: "route" } as NetworkDecision;
  assert.match(
    one(check(node(), [onLink]), "gateway", 6).summary,
    /on-link clients in 2001:db8:1::\/64 cannot be resolved/,
  );
  // Fine: a link-local address, an entry pinned by hand, ext0 down (reported as such), the neighbour
  // table not read.
  const pinned = node({
    neighbours: [{ ...neigh("2001:db8:1::1", "PERMANENT", "02:00:00:00:00:01"), family: 6 }],
  });
  const down = node({
    links: articleNode().links.map((l) => (l.ifname === "ext0" ? { ...l, up: false } : l)),
  });
  const unread: NodeState = { ...articleNode() };
  for (const n of [withLinkLocal(node()), pinned, down, unread])
    assert.equal(
      check(n, [CASE3_V6]).some((x) => x.path === "gateway"),
      false,
      JSON.stringify(n.addresses),
    );
});

test("weakened anti-spoofing: rp_filter lowered to 0 by hand with no guard; a guard in place restores it", () => {
  const before = one(check(node()), "anti-spoofing");
  assert.equal(before.ok, true, JSON.stringify(before)); // all=1: effective strict
  assert.match(before.summary, /effective 1: conf\.all 1, conf\.ext0 0/);

  const lowered = node({ sysctls: { "net/ipv4/conf/all/rp_filter": "0" } });
  const weak = one(check(lowered), "anti-spoofing");
  assert.equal(weak.ok, false);
  assert.match(weak.summary, /not checked \(effective rp_filter 0: conf\.all 0, conf\.ext0 0\) and no guard/);
  assert.match(weak.fix ?? "", /sysctl -w net\.ipv4\.conf\.ext0\.rp_filter=1/);
  // symroute's plan has a guard: the fix is to apply.
  const planned = one(check(lowered, [CASE3], WITH_FIX, false), "anti-spoofing");
  assert.equal(planned.ok, false);
  assert.ok(planned.fix?.startsWith(`\`${APPLY}\``), planned.fix);
  assert.match(planned.fix ?? "", /except to 1\.2\.3\.0\/24/);
  const guarded = one(check(lowered, [CASE3], WITH_FIX, true), "anti-spoofing");
  assert.equal(guarded.ok, true);
  assert.match(guarded.summary, /dropped by symroute's guard \(strict\)/);

  // Loose mode is weak only where the interface has an address (fact 5).
  const loose = node({ sysctls: { "net/ipv4/conf/all/rp_filter": "2" } });
  assert.equal(one(check(loose), "anti-spoofing").ok, true);
  const addressed: NodeState = {
    ...loose,
    addresses: [...loose.addresses, { ifname: "ext0", family: 4, local: "1.2.3.2", prefixlen: 24 }],
  };
  assert.equal(one(check(addressed), "anti-spoofing").ok, false);
});

test("IPv6 has no rp_filter: without a guard its sources are unchecked", () => {
  const f = one(check(node(), [CASE3_V6]), "anti-spoofing", 6);
  assert.equal(f.ok, false);
  assert.match(f.cause ?? "", /Linux has no rp_filter for IPv6/);
  assert.equal(one(check(node(), [CASE3_V6], WITH_FIX, true), "anti-spoofing", 6).ok, true);
});
