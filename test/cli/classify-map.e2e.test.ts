// The real CLI in a fresh dual-stack namespace: nftables tags a packet at ingress of a pool's
// interface (a chain of that device only) in symroute's bits of the packet mark, and prerouting
// looks a tagged new connection's destination up in that interface's map (KERNEL-FACTS 12; not one
// map on `iifname . ip daddr`, see docs/architecture.md); no lookup on the interface's name. A new
// connection to a pool
// gets its network's value in the ct mark while another component's bit outside symroute's mask
// survives, in both families; a connection that concerns no pool keeps its mark; a pool
// connection's replies leave by the pool's table; a removed per-value chain rule is drift that the
// next apply repairs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNode, e2eUnavailable, ext0Mac, must, type Netns } from "../support/netns.ts";
import { ctMarkOf, FOREIGN_BIT, prepareForeignMark, sendFlow } from "../support/ct-mark.ts";

const skip = e2eUnavailable();
const dir = mkdtempSync(join(tmpdir(), "symroute-classify-"));
chmodSync(dir, 0o755);
const CONFIG = join(dir, "four.yaml");
writeFileSync(
  CONFIG,
  `podCIDRs: [10.112.0.0/12]
networks:
  - { name: red, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
  - { name: blue, addresses: [5.6.7.0/24], interface: ext0, gateway: 5.6.7.1 }
  - { name: green, addresses: [9.9.9.0/24], interface: ext0, gateway: 9.9.9.1 }
  - { name: six, addresses: ["2001:db8:7::/64"], interface: ext0, gateway: "2001:db8:7::1" }
`,
);
chmodSync(CONFIG, 0o644);

interface NftRule {
  rule?: { chain: string; expr: unknown[]; comment?: string };
}

/** A bit of another component's, set in the ct mark of a connection's first packet only. */
const FIRST_ONLY_BIT = 0x20000000;

/** A client outside every pool, on the peer's ext0 side: main would answer it through eth0. */
const CLIENT4 = "203.0.113.10";
const CLIENT6 = "2001:db8:ff::10";

/**
 * Pool addresses of the node's own (1.2.3.4 and 2001:db8:7::5 on lo) reachable from the peer through
 * ext0, and both clients' addresses on the peer, used as sources towards the pool addresses; counters on
 * the node's way out tell which interface a reply to a client leaves by.
 */
function prepareClients(node: Netns): void {
  must(
    ["ip", "-n", node.name, "-batch", "-"],
    "addr add 2001:db8:7::5/128 dev lo\naddr add 1.2.3.4/32 dev lo\n",
  );
  const mac = ext0Mac(node);
  must(
    ["ip", "-n", node.peer, "-batch", "-"],
    [
      "addr add 2001:db8:7::1/64 dev r-ext0 nodad",
      // main's IPv6 default gateway, so that a reply main sends through eth0 reaches the client too
      "addr add 2001:db8:1::1/64 dev r-eth0 nodad",
      `addr add ${CLIENT4}/32 dev r-ext0`,
      `addr add ${CLIENT6}/128 dev r-ext0 nodad`,
      `neigh add 2001:db8:7::5 lladdr ${mac} dev r-ext0`,
      // red's gateway, where red's table sends the node's replies
      "addr add 1.2.3.1/24 dev r-ext0",
      `neigh add 1.2.3.4 lladdr ${mac} dev r-ext0`,
      `route add 1.2.3.4/32 dev r-ext0 src ${CLIENT4}`,
      `route add 2001:db8:7::5/128 dev r-ext0 src ${CLIENT6}`,
      "",
    ].join("\n"),
  );
  node.exec(
    ["nft", "-f", "-"],
    `table inet probe {
  counter ext0_4 {}
  counter eth0_4 {}
  counter ext0_6 {}
  counter eth0_6 {}
  chain post {
    type filter hook postrouting priority 0; policy accept;
    ip daddr ${CLIENT4} oifname "ext0" counter name "ext0_4"
    ip daddr ${CLIENT4} oifname "eth0" counter name "eth0_4"
    ip6 daddr ${CLIENT6} oifname "ext0" counter name "ext0_6"
    ip6 daddr ${CLIENT6} oifname "eth0" counter name "eth0_6"
  }
}
`,
  );
}

/** Packets to the client of `family` that left by `oif` so far. */
function repliesBy(node: Netns, oif: "ext0" | "eth0", family: 4 | 6): number {
  const counter = `${oif}_${family}`;
  const listed = JSON.parse(node.exec(["nft", "-j", "list", "counter", "inet", "probe", counter]).stdout) as {
    nftables: { counter?: { packets: number } }[];
  };
  return listed.nftables.find((o) => o.counter !== undefined)?.counter?.packets ?? 0;
}

/** A TCP connection from a client to a closed port of a pool address: the node's reset is the reply. */
function connectFromClient(node: Netns, address: string, port: number): void {
  const out = must([
    "ip",
    "netns",
    "exec",
    node.peer,
    "bash",
    "-c",
    // Bounded only so that a lost reset fails the test instead of hanging it.
    `(timeout 10 bash -c 'exec 3<>/dev/tcp/${address}/${port}') 2>&1 || true`,
  ]);
  assert.match(out, /refused/, `the node's reset reached the client: ${out}`);
}

test(
  "nftables: a tag at the interface's ingress, then one lookup by destination, classifies; other bits survive; replies take the pool's table",
  { skip },
  (t) => {
    const node = createNode(t, { dualStack: true });
    prepareForeignMark(node);
    prepareClients(node);

    const plan = node.symroute(["plan", "-c", CONFIG, "-o", "json"]);
    assert.equal(plan.code, 2, plan.stderr);
    const report = JSON.parse(plan.stdout) as {
      classify: { form: string; size: number; lookups: number; lookupsElsewhere: number };
      networks: { name: string; mark?: number }[];
    };
    assert.equal(report.classify.form, "map");
    assert.equal(report.classify.size, 4);
    assert.equal(report.classify.lookups, 1);
    assert.equal(report.classify.lookupsElsewhere, 0);
    const text = node.symroute(["plan", "-c", CONFIG]);
    assert.match(
      text.stdout,
      /classify new connections \(nftables\): map, one map lookup on ip daddr \/ ip6 daddr per new connection tagged at ingress of a pool's interface \(1 interface\)/,
    );
    // Before apply: only the other component's bit (rp_filter off for the moment, so that the node,
    // which does not route 5.6.7.1 back through ext0 yet, accepts the packet), and the reply to a
    // client leaves by main's default route (eth0): the counters can tell the two ways apart.
    node.exec(["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
    sendFlow(node, 3999);
    connectFromClient(node, "1.2.3.4", 3998);
    connectFromClient(node, "2001:db8:7::5", 3997);
    node.exec(["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"]);
    const before = ctMarkOf(node, 3999);
    assert.equal(before.mark, FOREIGN_BIT, before.entries);
    const replies = (): string =>
      ([4, 6] as const)
        .map((f) => `IPv${f}: eth0 ${repliesBy(node, "eth0", f)}, ext0 ${repliesBy(node, "ext0", f)}`)
        .join("; ");
    assert.equal(
      replies(),
      "IPv4: eth0 1, ext0 0; IPv6: eth0 1, ext0 0",
      node.exec(["nft", "list", "table", "inet", "probe"]).stdout,
    );
    const applied = node.symroute(["apply", "-c", CONFIG]);
    assert.equal(applied.code, 0, applied.stderr + applied.stdout);

    // In the kernel: prerouting holds no lookup (a test of the packet mark, then the reply side);
    // ext0's tag chain, at ingress of ext0 only, tags its packets without a lookup; ext0's classify
    // chain looks the destination up, one map per family, with all of its pools.
    const rules = (
      JSON.parse(node.exec(["nft", "-j", "list", "table", "inet", "symroute"]).stdout) as {
        nftables: NftRule[];
      }
    ).nftables.flatMap((o) => (o.rule === undefined ? [] : [o.rule]));
    const pre = rules.filter((r) => r.chain === "pre").map((r) => JSON.stringify(r.expr));
    assert.equal(pre.length, 2, pre.join("\n"));
    assert.ok(
      pre.every((r) => !r.includes('"vmap"') && !r.includes('"iifname"')),
      pre.join("\n"),
    );
    // nft 1.0.6's JSON leaves the device out: the text listing names it.
    const hook = node.exec(["nft", "list", "chain", "netdev", "symroute", "tag_ext0"]).stdout;
    assert.match(hook, /type filter hook ingress device "ext0" priority -450;/, hook);
    assert.doesNotMatch(hook, /map|daddr/, hook);
    const perInterface = rules.filter((r) => r.chain === "classify_ext0");
    assert.equal(perInterface.length, 2, JSON.stringify(perInterface));
    const [v4, v6] = perInterface.map((r) => JSON.stringify(r.expr));
    assert.equal(v4?.match(/"prefix"/g)?.length, 3, v4);
    assert.match(v4 ?? "", /"protocol":\s*"ip"/);
    assert.doesNotMatch(v4 ?? "", /"concat"|"iifname"/);
    assert.equal(v6?.match(/"prefix"/g)?.length, 1, v6);
    assert.match(v6 ?? "", /"protocol":\s*"ip6"/);

    // A new flow to blue: blue's value, the other bit kept.
    sendFlow(node, 4000);
    const blue = report.networks.find((n) => n.name === "blue")?.mark as number;
    const { mark, entries } = ctMarkOf(node, 4000);
    assert.equal(mark, FOREIGN_BIT | blue, `conntrack: ${entries}`);
    // A UDP flow's later packets are new too (no reply yet): the ct mark is set from the tag only
    // while it is 0, so that a bit another component set on the first packet alone (here in a nat
    // chain, which only a connection's first packet meets) survives the second. (The node's
    // port-unreachable is dropped, so that the client's socket sends the second one.)
    node.exec(
      ["nft", "-f", "-"],
      [
        "table inet firstonly {",
        "  chain n {",
        "    type nat hook prerouting priority -100; policy accept;",
        `    ct mark set ct mark or ${FIRST_ONLY_BIT}`,
        "  }",
        "  chain o {",
        "    type filter hook output priority 0; policy accept;",
        "    icmp type destination-unreachable drop",
        "  }",
        "}",
        "",
      ].join("\n"),
    );
    must([
      "ip",
      "netns",
      "exec",
      node.peer,
      "bash",
      "-c",
      "exec 3<>/dev/udp/5.6.7.5/4006 && echo one >&3 && echo two >&3",
    ]);
    const twice = ctMarkOf(node, 4006);
    assert.equal(twice.mark, FOREIGN_BIT | FIRST_ONLY_BIT | blue, `conntrack: ${twice.entries}`);
    node.exec(["nft", "delete", "table", "inet", "firstonly"]);
    // IPv6: the same through the ip6 map.
    const six = report.networks.find((n) => n.name === "six")?.mark as number;
    must(["ip", "netns", "exec", node.peer, "bash", "-c", "echo x > /dev/udp/2001:db8:7::5/4002"]);
    const sixFlow = ctMarkOf(node, 4002);
    assert.equal(sixFlow.mark, FOREIGN_BIT | six, `conntrack: ${sixFlow.entries}`);
    // Flows that concern no pool keep their mark: on eth0 (no pools there), and (at the end) on
    // ext0 to an address outside its pools.
    must(["ip", "netns", "exec", node.peer, "bash", "-c", "echo x > /dev/udp/192.168.1.10/4003"]);
    const eth0Flow = ctMarkOf(node, 4003);
    assert.equal(eth0Flow.mark, FOREIGN_BIT, eth0Flow.entries);

    // Replies to a client outside the pools leave by the pool's table (ext0), in both families.
    // (The IPv6 datagram above came from the IPv6 client too: its port-unreachable is a reply that
    // may count already, so each reset is counted from here.)
    for (const family of [4, 6] as const) {
      const [eth0, ext0] = [repliesBy(node, "eth0", family), repliesBy(node, "ext0", family)];
      connectFromClient(node, family === 4 ? "1.2.3.4" : "2001:db8:7::5", 4005);
      assert.deepEqual(
        [repliesBy(node, "eth0", family) - eth0, repliesBy(node, "ext0", family) - ext0],
        [0, 1],
        `IPv${family}: the reset left by ext0 (pool's table), not eth0 (main)`,
      );
    }

    // Drift: remove the rule of blue's restore chain; plan sees it, apply puts it back.
    const hex = `0x${blue.toString(16)}`;
    const victim = rules.find((r) => r.chain === `m${hex}`) as { handle?: number } | undefined;
    assert.ok(victim?.handle !== undefined, JSON.stringify(rules.map((r) => r.chain)));
    must([
      "ip",
      "netns",
      "exec",
      node.name,
      "nft",
      "delete",
      "rule",
      "inet",
      "symroute",
      `m${hex}`,
      "handle",
      String(victim.handle),
    ]);
    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 2);
    assert.equal(node.symroute(["apply", "-c", CONFIG]).code, 0);
    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 0);
    sendFlow(node, 4001);
    const again = ctMarkOf(node, 4001);
    assert.equal(again.mark, FOREIGN_BIT | blue, again.entries);

    // On ext0, to the node's 198.51.100.5, outside every pool. No pool exempts it from the source
    // check on ext0: it comes from 192.0.2.1, which the node's main table routes back through ext0.
    must(
      ["ip", "-n", node.name, "-batch", "-"],
      "addr add 198.51.100.5/32 dev lo\nroute add 192.0.2.0/24 dev ext0\n",
    );
    must(
      ["ip", "-n", node.peer, "-batch", "-"],
      `addr add 192.0.2.1/24 dev r-ext0\nneigh add 198.51.100.5 lladdr ${ext0Mac(node)} dev r-ext0\nroute add 198.51.100.5/32 dev r-ext0 src 192.0.2.1\n`,
    );
    must(["ip", "netns", "exec", node.peer, "bash", "-c", "echo x > /dev/udp/198.51.100.5/4004"]);
    const outside = ctMarkOf(node, 4004);
    assert.equal(outside.mark, FOREIGN_BIT, outside.entries);
  },
);
