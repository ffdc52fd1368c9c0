// `symroute explain`'s anti-spoofing stage agrees with real traffic (issue 13 item 5): after apply,
// a packet with a spoofed source entering ext0 is "rejected by the guard" in explain and is dropped
// on the node; a packet to a pool passes both; with the guard gone, explain says so and the same
// spoofed packet is delivered. IPv6: before apply nothing checks sources (no rp_filter in Linux),
// after it symroute's guard does, and explain says so both times. Both firewall front ends.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  PUBLIC_NETWORK,
  configDir,
  createNode,
  e2eUnavailable,
  ext0Mac,
  must,
  run,
  writeConfigFile,
  type Netns,
} from "../support/netns.ts";
import {
  SEGMENT_CLIENT as CLIENT,
  SEGMENT_LB as LB,
  SEGMENT_NODE as NODE,
  SEGMENT_SPOOF as SPOOF,
  mustInNode as inNode,
  spoofingSegment,
} from "../support/spoof-segment.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-explain-guard-");

const PORT = 9999;

const configFor = (firewall: string): string =>
  writeConfigFile(dir, `${firewall}.yaml`, `firewall: ${firewall}\n${PUBLIC_NETWORK}`);

/**
 * The test's own counters on the node: arrival on ext0 (before symroute's guard there, at priority
 * -500), past the guards' hooks, local delivery.
 */
const COUNTERS = `table netdev xg-ingress {
  counter arrived { }
  chain ext0 {
    type filter hook ingress device "ext0" priority -600; policy accept;
    udp dport ${PORT} counter name "arrived"
  }
}
table inet xg {
  counter spoof-past { }
  counter control-past { }
  counter delivered { }
  chain after_guard {
    type filter hook prerouting priority -140; policy accept;
    ip saddr ${SPOOF} udp dport ${PORT} counter name "spoof-past"
    ip saddr ${CLIENT} ip daddr ${LB} udp dport ${PORT} counter name "control-past"
  }
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr ${SPOOF} udp dport ${PORT} counter name "delivered"
  }
}
`;

function counter(node: Netns, family: string, table: string, name: string): number {
  const out = JSON.parse(inNode(node, ["nft", "-j", "list", "counter", family, table, name])) as {
    nftables: { counter?: { packets: number } }[];
  };
  const c = out.nftables.find((x) => x.counter !== undefined)?.counter;
  assert.ok(c, `counter ${name}`);
  return c.packets;
}

/**
 * Polls a counter until it is above `from` (or gives up after 2,000 reads): packets sent from the
 * peer cross the node in the peer's context, so this is usually the first read.
 */
function counterAbove(node: Netns, family: string, table: string, name: string, from: number): number {
  let seen = counter(node, family, table, name);
  for (let i = 0; i < 2000 && seen <= from; i++) seen = counter(node, family, table, name);
  return seen;
}

function send(node: Netns, from: string, to: string): void {
  const script = `const s=require("node:dgram").createSocket("udp4");s.bind({address:"${from}"},()=>s.send("x",${PORT},"${to}",(e)=>{s.close();process.exitCode=e?1:0}))`;
  const r = run(["ip", "netns", "exec", node.peer, process.execPath, "-e", script]);
  assert.equal(r.code, 0, r.stderr);
}

/**
 * The spoofed packet, then a control packet to the pool on the same path (which every guard lets
 * through); once the control is counted past the guard, the spoofed one, sent first on the same
 * queue, has been through it too. Returns whether the spoofed packet passed; it must have arrived.
 */
function spoofPasses(node: Netns): boolean {
  const arrived = counter(node, "netdev", "xg-ingress", "arrived");
  const passed = counter(node, "inet", "xg", "spoof-past");
  const controls = counter(node, "inet", "xg", "control-past");
  send(node, SPOOF, NODE);
  send(node, CLIENT, LB);
  const seen = counterAbove(node, "inet", "xg", "control-past", controls);
  assert.ok(seen > controls, "the control packet passed the guard");
  assert.equal(counter(node, "netdev", "xg-ingress", "arrived"), arrived + 2, "both packets reached ext0");
  return counter(node, "inet", "xg", "spoof-past") > passed;
}

interface ExplainJson {
  result: string;
  reason: string | null;
  guard: { result: string; reason: string; mode: string } | null;
  notes: string[];
}

function explain(node: Netns, from: string, to: string): ExplainJson {
  const r = node.symroute([
    "explain",
    "--from",
    from,
    "--to",
    to,
    "--iif",
    "ext0",
    "--proto",
    "udp",
    "--dport",
    `${PORT}`,
    "-o",
    "json",
  ]);
  // 3: the routing after the guard is not modelled (IPv6 router choice with forwarding off); the
  // guard's verdict still stands.
  assert.ok(r.code === 0 || r.code === 3, r.stderr + r.stdout);
  return JSON.parse(r.stdout) as ExplainJson;
}

const GUARD_REMOVAL: Record<string, readonly string[]> = {
  nftables: ["nft", "flush", "chain", "netdev", "symroute", "guard_ext0"],
  iptables: ["iptables", "-t", "mangle", "-F", "SYMROUTE-G-ext0"],
};

for (const firewall of ["nftables", "iptables"] as const) {
  test(`explain's anti-spoofing verdict agrees with real traffic on ext0 (${firewall})`, { skip }, (t) => {
    const node = createNode(t);
    spoofingSegment(node);
    const config = configFor(firewall);
    const applied = node.symroute(["apply", "-c", config]);
    assert.equal(applied.code, 0, applied.stderr);
    inNode(node, ["nft", "-f", "-"], COUNTERS);

    // Spoofed pod-range source to the node's management address: explain drops it at the guard...
    const spoofed = explain(node, SPOOF, NODE);
    assert.equal(spoofed.result, "rejected", JSON.stringify(spoofed));
    assert.equal(spoofed.guard?.result, "drop");
    assert.match(
      spoofed.guard?.reason ?? "",
      /strict guard on ext0: lookup of the source 10\.112\.0\.5 leaves by eth0, not ext0/,
    );
    // ...and so does the node.
    assert.equal(spoofPasses(node), false, "the spoofed packet is dropped");
    assert.equal(counter(node, "inet", "xg", "delivered"), 0);

    // To a pool, any source passes the guard: explain and the control packet's counter agree.
    const control = explain(node, CLIENT, LB);
    assert.equal(control.guard?.result, "exempt", JSON.stringify(control));

    // The text form names the stage.
    const text = node.symroute(["explain", "--from", SPOOF, "--to", NODE, "--iif", "ext0"]);
    assert.match(text.stdout, /^anti-spoofing guard: drop: strict guard on ext0/m);
    assert.match(text.stdout, /^verdict: rejected: strict guard on ext0/m);

    // Negative control: without the guard explain says it is missing, and the packet is delivered
    // (rp_filter on ext0 is 0 after apply: nothing else checks the source).
    inNode(node, GUARD_REMOVAL[firewall] ?? []);
    const open = explain(node, SPOOF, NODE);
    assert.equal(open.guard, null);
    assert.equal(open.result, "local", JSON.stringify(open));
    assert.match(
      open.notes.join("\n"),
      /guard on ext0 is in its state but its firewall is not on the node as applied/,
    );
    assert.equal(spoofPasses(node), true, "without the guard the spoofed packet passes");
    const delivered = counterAbove(node, "inet", "xg", "delivered", 0);
    assert.equal(delivered, 1, "the spoofed packet was delivered");

    // apply repairs it, and explain and traffic agree again.
    assert.equal(node.symroute(["apply", "-c", config]).code, 0);
    assert.equal(explain(node, SPOOF, NODE).guard?.result, "drop");
    assert.equal(spoofPasses(node), false);
  });
}

/** A source whose /24 the node routes out of eth0 (metric 100) before ext0 (metric 200). */
const TWO_ROUTES = "10.77.0.5";
const TWO_ROUTES_COUNTERS = `table inet xg2 {
  counter past { }
  counter control-past { }
  chain after_guard {
    type filter hook prerouting priority -140; policy accept;
    ip saddr ${TWO_ROUTES} udp dport ${PORT} counter name "past"
    ip saddr ${CLIENT} ip daddr ${LB} udp dport ${PORT} counter name "control-past"
  }
}
`;

for (const firewall of ["nftables", "iptables"] as const) {
  test(
    `a source with a route on eth0 before one on ext0: dropped by the strict guard, and explain agrees (${firewall})`,
    { skip },
    (t) => {
      const node = createNode(t);
      spoofingSegment(node, [TWO_ROUTES]);
      inNode(
        node,
        ["ip", "-batch", "-"],
        "route add 10.77.0.0/24 dev eth0 metric 100\nroute add 10.77.0.0/24 dev ext0 metric 200\n",
      );
      assert.equal(node.symroute(["apply", "-c", configFor(firewall)]).code, 0);
      inNode(node, ["nft", "-f", "-"], TWO_ROUTES_COUNTERS);

      // The kernel looks the source up on no particular device (both front ends), takes eth0's
      // route and drops the packet; explain looked it up on ext0 alone and passed it.
      const explained = explain(node, TWO_ROUTES, NODE);
      assert.equal(explained.result, "rejected", JSON.stringify(explained));
      assert.match(explained.guard?.reason ?? "", /leaves by eth0, not ext0: 10\.77\.0\.0\/24 dev eth0/);
      const controls = counter(node, "inet", "xg2", "control-past");
      send(node, TWO_ROUTES, NODE);
      send(node, CLIENT, LB);
      const seen = counterAbove(node, "inet", "xg2", "control-past", controls);
      assert.ok(seen > controls, "the control packet, sent after it, passed the guard");
      assert.equal(counter(node, "inet", "xg2", "past"), 0, "the packet was dropped by the guard");
    },
  );
}

const SPOOF6 = "2001:db8:1::77"; // an address of the management subnet, sent into ext0
const NODE6 = "2001:db8:1::10";
const CLIENT6 = "2001:db8:9::10";
const LB6 = "2001:db8:5::4";

const dualConfigFor = (firewall: string): string =>
  writeConfigFile(
    dir,
    `dual-${firewall}.yaml`,
    `firewall: ${firewall}
networks:
  - { name: public, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
  - { name: public6, addresses: ["2001:db8:5::/64"], interface: ext0, gateway: "2001:db8:5::1" }
`,
  );

const COUNTERS6 = `table netdev xg6-ingress {
  counter arrived { }
  chain ext0 {
    type filter hook ingress device "ext0" priority -600; policy accept;
    ip6 saddr { ${SPOOF6}, ${CLIENT6}, fe80::/10 } udp dport ${PORT} counter name "arrived"
  }
}
table inet xg6 {
  counter spoof-past { }
  counter link-local-past { }
  counter control-past { }
  counter delivered { }
  chain after_guard {
    type filter hook prerouting priority -140; policy accept;
    ip6 saddr ${SPOOF6} udp dport ${PORT} counter name "spoof-past"
    ip6 saddr fe80::/10 udp dport ${PORT} counter name "link-local-past"
    ip6 saddr ${CLIENT6} ip6 daddr ${LB6} udp dport ${PORT} counter name "control-past"
  }
  chain input {
    type filter hook input priority 0; policy accept;
    ip6 saddr ${SPOOF6} udp dport ${PORT} counter name "delivered"
  }
}
`;

function send6(node: Netns, from: string, to: string): void {
  const script = `const s=require("node:dgram").createSocket("udp6");s.bind({address:"${from}"},()=>s.send("x",${PORT},"${to}",(e)=>{s.close();process.exitCode=e?1:0}))`;
  const r = run(["ip", "netns", "exec", node.peer, process.execPath, "-e", script]);
  assert.equal(r.code, 0, r.stderr);
}

/**
 * As spoofPasses, for IPv6: the packet from `source` (the spoofed one unless told), then a control
 * to the IPv6 pool; `passedCounter` counts the first past the guard.
 */
function spoof6Passes(node: Netns, source = SPOOF6, passedCounter = "spoof-past"): boolean {
  const arrived = counter(node, "netdev", "xg6-ingress", "arrived");
  const passed = counter(node, "inet", "xg6", passedCounter);
  const controls = counter(node, "inet", "xg6", "control-past");
  send6(node, source, NODE6);
  send6(node, CLIENT6, LB6);
  const seen = counterAbove(node, "inet", "xg6", "control-past", controls);
  assert.ok(seen > controls, "the control packet passed the guard");
  assert.equal(counter(node, "netdev", "xg6-ingress", "arrived"), arrived + 2, "both packets reached ext0");
  return counter(node, "inet", "xg6", passedCounter) > passed;
}

/**
 * The peer sends from `source` to NODE6 and from CLIENT6 to LB6, both into ext0: the sources on its
 * lo, a rule per source, and ext0's MAC pinned for both destinations (for LB6 the stand-in for
 * MetalLB's neighbour answer; for NODE6, an address of eth0's, a sender on ext0's link aiming at it).
 */
function peerSendsThroughExt0(node: Netns, source: string): void {
  const mac = ext0Mac(node);
  const lines = [
    `addr add ${source}/128 dev lo nodad`,
    `addr add ${CLIENT6}/128 dev lo nodad`,
    "link set lo up",
    `neigh replace ${NODE6} lladdr ${mac} dev r-ext0 nud permanent`,
    `neigh replace ${LB6} lladdr ${mac} dev r-ext0 nud permanent`,
    `rule add from ${source} lookup 99 priority 99`,
    `route add ${NODE6}/128 dev r-ext0 table 99`,
    `rule add from ${CLIENT6} lookup 98 priority 98`,
    `route add ${LB6}/128 dev r-ext0 table 98`,
  ];
  must(["ip", "-n", node.peer, "-6", "-batch", "-"], `${lines.join("\n")}\n`);
}

/** The link-local address of the peer's end of ext0's link. */
function peerLinkLocal(node: Netns): string {
  const listed = JSON.parse(
    must(["ip", "-n", node.peer, "-6", "-j", "addr", "show", "dev", "r-ext0", "scope", "link"]),
  ) as {
    addr_info: { local: string }[];
  }[];
  const local = listed[0]?.addr_info[0]?.local;
  assert.ok(local !== undefined, "r-ext0 has a link-local address");
  return local;
}

for (const firewall of ["nftables", "iptables"] as const) {
  test(
    `IPv6: nothing checked sources on ext0 before apply, the guard after; explain agrees both times (${firewall})`,
    { skip },
    (t) => {
      const node = createNode(t, { dualStack: true });
      peerSendsThroughExt0(node, SPOOF6);
      inNode(node, ["nft", "-f", "-"], COUNTERS6);

      // Before apply: Linux has no IPv6 rp_filter; explain says nothing checks, and the packet is delivered.
      const before = explain(node, SPOOF6, NODE6);
      assert.equal(before.guard, null);
      assert.equal(before.result, "local", JSON.stringify(before));
      assert.equal(spoof6Passes(node), true, "before apply the spoofed IPv6 packet passes");
      const delivered = counterAbove(node, "inet", "xg6", "delivered", 0);
      assert.equal(delivered, 1);
      const text = node.symroute(["explain", "--from", SPOOF6, "--to", NODE6, "--iif", "ext0"]);
      assert.match(
        text.stdout,
        /^anti-spoofing guard: none of symroute's on ext0 for IPv6: Linux has no rp_filter for IPv6/m,
      );

      // After apply: symroute's IPv6 guard, in explain and on the node.
      const applied = node.symroute(["apply", "-c", dualConfigFor(firewall)]);
      assert.equal(applied.code, 0, applied.stderr);
      const after = explain(node, SPOOF6, NODE6);
      assert.equal(after.result, "rejected", JSON.stringify(after));
      assert.equal(after.guard?.result, "drop");
      assert.match(
        after.guard?.reason ?? "",
        /strict guard on ext0: lookup of the source 2001:db8:1::77 leaves by eth0/,
      );
      assert.equal(explain(node, CLIENT6, LB6).guard?.result, "exempt");
      assert.equal(spoof6Passes(node), false, "after apply the spoofed IPv6 packet is dropped");
      assert.equal(counter(node, "inet", "xg6", "delivered"), 1);

      // The router's link-local address: the kernel looks a link-local source up on the interface
      // it arrived on (every interface has its own fe80::/64, eth0's listed first), so it passes the
      // guard; explain said it was dropped.
      const linkLocal = peerLinkLocal(node);
      must(
        ["ip", "-n", node.peer, "-6", "-batch", "-"],
        `rule add from ${linkLocal} lookup 97 priority 97\nroute add ${NODE6}/128 dev r-ext0 table 97\n`,
      );
      const fromLinkLocal = explain(node, linkLocal, NODE6);
      assert.equal(fromLinkLocal.guard?.result, "pass", JSON.stringify(fromLinkLocal));
      assert.equal(
        spoof6Passes(node, `${linkLocal}%r-ext0`, "link-local-past"),
        true,
        "a link-local source passes the guard",
      );
    },
  );
}

/** An IPv6 source whose /64 the node routes out of eth0 (metric 100) and out of ext0 (metric 200). */
const TWO_ROUTES6 = "2001:db8:77::5";
const TWO_ROUTES6_COUNTERS = `table inet xg7 {
  counter past { }
  counter control-past { }
  chain after_guard {
    type filter hook prerouting priority -140; policy accept;
    ip6 saddr ${TWO_ROUTES6} udp dport ${PORT} counter name "past"
    ip6 saddr ${CLIENT6} ip6 daddr ${LB6} udp dport ${PORT} counter name "control-past"
  }
}
`;

// The one case where the front ends differ: ip6tables' strict rpfilter prefers, among the routes of
// the prefix it finds, one out of the input interface; nft's fib takes the first.
for (const [firewall, passes] of [
  ["nftables", false],
  ["iptables", true],
] as const) {
  test(
    `IPv6: a source with routes on eth0 and on ext0 is ${passes ? "passed" : "dropped"} by the ${firewall} guard, and explain agrees`,
    { skip },
    (t) => {
      const node = createNode(t, { dualStack: true });
      peerSendsThroughExt0(node, TWO_ROUTES6);
      inNode(
        node,
        ["ip", "-6", "-batch", "-"],
        "route add 2001:db8:77::/64 dev eth0 metric 100\nroute add 2001:db8:77::/64 dev ext0 metric 200\n",
      );
      assert.equal(node.symroute(["apply", "-c", dualConfigFor(firewall)]).code, 0);
      inNode(node, ["nft", "-f", "-"], TWO_ROUTES6_COUNTERS);

      const explained = explain(node, TWO_ROUTES6, NODE6);
      assert.equal(explained.guard?.result, passes ? "pass" : "drop", JSON.stringify(explained));
      const controls = counter(node, "inet", "xg7", "control-past");
      send6(node, TWO_ROUTES6, NODE6);
      send6(node, CLIENT6, LB6);
      const seen = counterAbove(node, "inet", "xg7", "control-past", controls);
      assert.ok(seen > controls, "the control packet, sent after it, passed the guard");
      assert.equal(counter(node, "inet", "xg7", "past"), passes ? 1 : 0);
    },
  );
}
