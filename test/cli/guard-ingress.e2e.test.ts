// Issue 15 item 2: with the nftables front end, the anti-spoofing guard is a chain hooked at ingress
// of the guarded interface only, so packets arriving on any other interface never enter it. After
// apply: the guard's chain is in `table netdev symroute` on ext0's ingress and nothing of symroute's
// hooks prerouting at priority raw; a spoofed packet into ext0 is dropped, a client's packet to the
// pool passes, and a counter put at the head of the guard's chain (by the test) counts the packets
// that entered ext0 and none of those that entered eth0. Fragmented datagrams get the same verdicts;
// in loose mode a source routed anywhere passes and one the node cannot route is dropped.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  PUBLIC_NETWORK,
  configDir,
  createNode,
  e2eUnavailable,
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
const dir = configDir("symroute-guard-ingress-");

/** symroute (nftables front end) applied to the article's case 3 network; `fileName` in the test's dir. */
function applyNftables(node: Netns, fileName: string): void {
  const config = writeConfigFile(dir, fileName, `firewall: nftables\n${PUBLIC_NETWORK}`);
  const applied = node.symroute(["apply", "-c", config]);
  assert.equal(applied.code, 0, applied.stderr + applied.stdout);
}

/** A source the node has no route for (an `unreachable` route the loose test adds). */
const UNROUTED = "198.51.100.7";
const PORT = 9998;

/** The test's counters on the node, after every ingress hook (prerouting, before conntrack). */
const COUNTERS = `table inet gi {
  counter spoof-past { }
  counter client-past { }
  counter eth0-past { }
  counter unrouted-past { }
  chain after_guard {
    type filter hook prerouting priority -350; policy accept;
    iifname "ext0" ip saddr ${SPOOF} udp dport ${PORT} counter name "spoof-past"
    iifname "ext0" ip saddr ${CLIENT} ip daddr ${LB} udp dport ${PORT} counter name "client-past"
    iifname "eth0" udp dport ${PORT} counter name "eth0-past"
    iifname "ext0" ip saddr ${UNROUTED} udp dport ${PORT} counter name "unrouted-past"
  }
}
`;

function counter(node: Netns, name: string): number {
  const out = JSON.parse(inNode(node, ["nft", "-j", "list", "counter", "inet", "gi", name])) as {
    nftables: { counter?: { packets: number } }[];
  };
  const c = out.nftables.find((x) => x.counter !== undefined)?.counter;
  assert.ok(c, `counter ${name}`);
  return c.packets;
}

/** Packets the test's own rule at the head of symroute's guard chain counted. */
function enteredGuard(node: Netns): number {
  const out = JSON.parse(
    inNode(node, ["nft", "-j", "list", "chain", "netdev", "symroute", "guard_ext0"]),
  ) as {
    nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[];
  };
  const rule = out.nftables.find((x) => x.rule?.comment === "test: entered")?.rule;
  assert.ok(rule, "the test's counter in guard_ext0");
  return rule.expr.find((e) => e.counter !== undefined)?.counter?.packets ?? 0;
}

function send(node: Netns, from: string, to: string, count = 1, size = 1): void {
  const script = `const s=require("node:dgram").createSocket("udp4");let n=${count};s.bind({address:"${from}"},()=>{const go=()=>s.send(Buffer.alloc(${size}),${PORT},"${to}",(e)=>{if(e){process.exitCode=1;s.close();return}if(--n>0)go();else s.close()});go()})`;
  const r = run(["ip", "netns", "exec", node.peer, process.execPath, "-e", script]);
  assert.equal(r.code, 0, r.stderr);
}

/** Datagrams the node reassembled from fragments (/proc/net/snmp, Ip: ReasmOKs). */
function reassemblies(node: Netns): number {
  const [names, values] = inNode(node, ["cat", "/proc/net/snmp"])
    .split("\n")
    .filter((l) => l.startsWith("Ip: "))
    .map((l) => l.split(" "));
  const at = names?.indexOf("ReasmOKs") ?? -1;
  assert.ok(at > 0, "ReasmOKs in /proc/net/snmp");
  return Number(values?.[at]);
}

/** Waits (a condition, polled) until `name` reaches `value`; returns what it reached. */
function awaitCounter(node: Netns, name: string, value: number): number {
  let seen = counter(node, name);
  for (let i = 0; i < 2000 && seen < value; i++) seen = counter(node, name);
  return seen;
}

test(
  "the guard hooks ingress of the guarded interface only: other interfaces never enter it",
  { skip },
  (t) => {
    const node = createNode(t);
    spoofingSegment(node, [UNROUTED]);
    applyNftables(node, "nftables.yaml");

    // Where it hooks: ext0's ingress, in symroute's netdev table; no raw-priority prerouting chain.
    const netdev = inNode(node, ["nft", "list", "table", "netdev", "symroute"]);
    assert.match(netdev, /chain guard_ext0 \{\n\s*type filter hook ingress device "ext0" priority -500;/);
    assert.match(
      netdev,
      /meta protocol ip fib saddr \. iif oif missing drop comment "ext0 v4 strict source check #/,
    );
    const inet = inNode(node, ["nft", "list", "table", "inet", "symroute"]);
    assert.doesNotMatch(inet, /hook prerouting priority raw/);
    assert.doesNotMatch(inet, /fib saddr/);

    inNode(node, ["nft", "-f", "-"], COUNTERS);
    // The test's own counter at the head of the guard's chain (drift to symroute; the test reads it).
    inNode(node, [
      "nft",
      "insert",
      "rule",
      "netdev",
      "symroute",
      "guard_ext0",
      "udp",
      "dport",
      `${PORT}`,
      "counter",
      "comment",
      '"test: entered"',
    ]);

    // Into eth0: delivered as before, and the guard never saw them.
    const eth0 = counter(node, "eth0-past");
    send(node, "192.168.1.1", NODE, 5);
    assert.equal(awaitCounter(node, "eth0-past", eth0 + 5), eth0 + 5, "the packets into eth0 arrived");
    assert.equal(enteredGuard(node), 0, "no packet from eth0 entered the guard");

    // Into ext0: the spoofed source is dropped, the client reaches the pool; both entered the guard.
    const spoof = counter(node, "spoof-past");
    const client = counter(node, "client-past");
    send(node, SPOOF, NODE);
    send(node, CLIENT, LB);
    // The client's packet, sent after the spoofed one on the same queue, passed: so has the spoofed one, if it did.
    assert.equal(
      awaitCounter(node, "client-past", client + 1),
      client + 1,
      "the client's packet passed the guard",
    );
    assert.equal(counter(node, "spoof-past"), spoof, "the spoofed packet was dropped");
    assert.equal(enteredGuard(node), 2, "both packets into ext0 entered the guard");

    // Ingress comes before defragmentation: the guard sees each fragment, and decides alike for all
    // of a datagram's fragments (they share its addresses). The sender's link MTU makes it fragment.
    must(["ip", "-n", node.peer, "link", "set", "r-ext0", "mtu", "576"]);
    const reassembled = reassemblies(node);
    send(node, SPOOF, NODE, 1, 1400);
    send(node, CLIENT, LB, 1, 1400);
    assert.equal(
      awaitCounter(node, "client-past", client + 2),
      client + 2,
      "the client's fragmented datagram passed the guard, reassembled",
    );
    assert.equal(counter(node, "spoof-past"), spoof, "no fragment of the spoofed datagram passed");
    assert.equal(reassemblies(node), reassembled + 1, "the node reassembled the client's datagram only");
    // Only a first fragment carries the UDP header the test's counter matches.
    assert.equal(enteredGuard(node), 4, "the first fragment of each datagram entered the guard");
  },
);

test(
  "loose mode at ingress: a source the node routes anywhere passes, one it cannot route is dropped",
  { skip },
  (t) => {
    const node = createNode(t);
    spoofingSegment(node, [UNROUTED]);
    // ext0 checked loosely before symroute: the guard keeps that mode.
    inNode(node, ["sysctl", "-qw", "net.ipv4.conf.ext0.rp_filter=2"]);
    inNode(node, ["ip", "route", "add", "unreachable", "198.51.100.0/24"]);
    applyNftables(node, "loose.yaml");
    const netdev = inNode(node, ["nft", "list", "table", "netdev", "symroute"]);
    assert.match(netdev, /meta protocol ip fib saddr oif missing drop comment "ext0 v4 loose source check #/);
    inNode(node, ["nft", "-f", "-"], COUNTERS);

    const [spoof, unrouted, client] = ["spoof-past", "unrouted-past", "client-past"].map((c) =>
      counter(node, c),
    );
    send(node, UNROUTED, NODE);
    send(node, SPOOF, NODE);
    send(node, CLIENT, LB);
    assert.equal(
      awaitCounter(node, "client-past", (client as number) + 1),
      (client as number) + 1,
      "the client passed",
    );
    // Routed back by eth0's default route: loose mode lets it through, as rp_filter 2 did.
    assert.equal(
      awaitCounter(node, "spoof-past", (spoof as number) + 1),
      (spoof as number) + 1,
      "a routable source passes",
    );
    assert.equal(counter(node, "unrouted-past"), unrouted, "a source the node cannot route is dropped");
  },
);
