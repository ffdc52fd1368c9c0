// The article's node against a strict upstream router (KERNEL-FACTS 10, 11), in both firewall front
// ends, with strict ARP on and nothing pinned on the node: the router (rp_filter 1) ignores ARP
// requests whose sender is outside its subnet, so the node resolves its gateway only through
// symroute's ARP probes; and symroute's anti-spoofing guard drops a pod-range source entering ext0.
// Each protection is shown to be what makes the difference: removed by hand, the traffic fails (or
// the spoofed packet arrives), `plan` reports the drift, and `apply` repairs it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNode, e2eUnavailable, must, run, type Netns, startHttpServer } from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = mkdtempSync(join(tmpdir(), "symroute-strict-"));
chmodSync(dir, 0o755);

const PORT = 8081;
const PROBE_PORT = 9999;

/** One address family's side of the test: the router's client, the LB address, the node. */
interface Side {
  readonly family: 4 | 6;
  readonly client: string;
  readonly lb: string;
  readonly node: string;
  /** A pod-range source: the spoofed packets'. */
  readonly spoof: string;
  readonly ip: "ip" | "ip6";
}
const V4: Side = {
  family: 4,
  client: "203.0.113.10",
  lb: "1.2.3.4",
  node: "192.168.1.10",
  spoof: "10.112.0.5",
  ip: "ip",
};
const V6: Side = {
  family: 6,
  client: "2001:db8:ff::10",
  lb: "2001:db8:100::4",
  node: "2001:db8:1::10",
  spoof: "fd00:112::5",
  ip: "ip6",
};
const { client: CLIENT, lb: LB, node: NODE, spoof: SPOOF } = V4;
const GATEWAY = "1.2.3.1";

const configFor = (firewall: string, family: 4 | 6 = 4): string => {
  const path = join(dir, `${firewall}-${family}.yaml`);
  const network =
    family === 4
      ? `addresses: [1.2.3.0/24]\n    gateway: ${GATEWAY}`
      : `addresses: ["2001:db8:100::/64"]\n    gateway: "2001:db8:100::1"`;
  writeFileSync(
    path,
    `firewall: ${firewall}
podCIDRs: [10.112.0.0/12, "fd00:112::/56"]
networks:
  - name: public
    interface: ext0
    ${network}
`,
  );
  chmodSync(path, 0o644);
  return path;
};

const inRouter = (node: Netns, argv: readonly string[], input?: string) =>
  run(["ip", "netns", "exec", node.peer, ...argv], { input });
const mustIn = (node: Netns, argv: readonly string[], input?: string): string => {
  const r = node.exec(argv, input);
  assert.equal(r.code, 0, `${argv.join(" ")}: ${r.stderr}`);
  return r.stdout;
};

/**
 * The strict router: 1.2.3.1/24 on the external segment, rp_filter 1 everywhere, the client's
 * address on its loopback, and a static neighbour for the LB address (MetalLB's ARP answer, which
 * comes from user space). It can send from a pod-range address into the node's ext0 (a rule of its
 * own), the way a spoofing host on that segment would. On the node: strict ARP, and a kube-proxy
 * stand-in that DNATs the LB address to the node's own server.
 */
function ext0Mac(node: Netns): string {
  const mac = (JSON.parse(mustIn(node, ["ip", "-j", "link", "show", "ext0"])) as { address: string }[])[0]
    ?.address;
  assert.ok(mac);
  return mac;
}

function strictTopology(node: Netns): void {
  const mac = ext0Mac(node);
  const router = [
    "addr add 1.2.3.1/24 dev r-ext0",
    `addr add ${CLIENT}/32 dev lo`,
    `addr add ${SPOOF}/32 dev lo`,
    "link set lo up",
    `neigh replace ${LB} lladdr ${mac} dev r-ext0 nud permanent`,
    `rule add from ${SPOOF} lookup 99 priority 99`,
    `route add ${NODE}/32 dev r-ext0 table 99`,
    // The spoofing host knows the node's MAC (it is on the segment); the node never answers ARP on
    // ext0 for an address of eth0 under strict ARP.
    `neigh replace ${NODE} lladdr ${mac} dev r-ext0 nud permanent`,
  ];
  const r = inRouter(node, ["ip", "-batch", "-"], `${router.join("\n")}\n`);
  assert.equal(r.code, 0, r.stderr);
  must([
    "ip",
    "netns",
    "exec",
    node.peer,
    "sysctl",
    "-qw",
    "net.ipv4.conf.all.rp_filter=1",
    "net.ipv4.conf.default.rp_filter=1",
    "net.ipv4.conf.r-ext0.rp_filter=1",
    "net.ipv4.conf.r-eth0.rp_filter=1",
  ]);
  mustIn(node, ["sysctl", "-qw", "net.ipv4.conf.all.arp_announce=2", "net.ipv4.conf.all.arp_ignore=1"]);
  // Short neighbour timers (the defaults are tens of seconds): a changed MAC is noticed quickly.
  mustIn(node, [
    "sysctl",
    "-qw",
    "net.ipv4.neigh.ext0.base_reachable_time_ms=1000",
    "net.ipv4.neigh.ext0.delay_first_probe_time=1",
  ]);
  // kube-proxy's stand-in, in nftables mode (no counters: the dumps compare byte for byte).
  mustIn(
    node,
    ["nft", "-f", "-"],
    `table ip kube-proxy-standin {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${LB} tcp dport ${PORT} dnat to ${NODE}:${PORT}
  }
}
`,
  );
}

/**
 * The IPv6 side: the router is 2001:db8:100::1 on the external segment, with the client's address
 * and a pod-range one on its loopback; the LB address is a static neighbour (MetalLB answers
 * neighbour solicitations in user space). The node's stand-in DNATs the LB address to its own
 * server. IPv6 has no rp_filter: before apply nothing checks sources on ext0.
 */
function ipv6Topology(node: Netns): void {
  const mac = ext0Mac(node);
  const router = [
    "addr add 2001:db8:100::1/64 dev r-ext0 nodad",
    `addr add ${V6.client}/128 dev lo nodad`,
    `addr add ${V6.spoof}/128 dev lo nodad`,
    `neigh replace ${V6.lb} lladdr ${mac} dev r-ext0 nud permanent`,
    `rule add from ${V6.spoof} lookup 99 priority 99`,
    `route add ${V6.node}/128 dev r-ext0 table 99`,
    `neigh replace ${V6.node} lladdr ${mac} dev r-ext0 nud permanent`,
  ];
  const r = inRouter(node, ["ip", "-6", "-batch", "-"], `link set lo up\n${router.join("\n")}\n`);
  assert.equal(r.code, 0, r.stderr);
  mustIn(
    node,
    ["nft", "-f", "-"],
    `table ip6 kube-proxy-standin {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip6 daddr ${V6.lb} tcp dport ${PORT} dnat to [${V6.node}]:${PORT}
  }
}
`,
  );
}

/** client → LB through the router: whether the answer came back. */
const clientReachesLb = (node: Netns, side: Side = V4): boolean => {
  const host = side.family === 6 ? `[${side.lb}]` : side.lb;
  const argv = ["curl", "-s", "--max-time", "2", "--interface", side.client, `http://${host}:${PORT}/`];
  return inRouter(node, argv).stdout === "ok";
};

interface Neighbour {
  dst: string;
  lladdr?: string;
  state?: string[];
}
const neighbours = (node: Netns): Neighbour[] =>
  JSON.parse(mustIn(node, ["ip", "-j", "neigh", "show"])) as Neighbour[];
const gatewayState = (node: Netns): string[] => neighbours(node).find((n) => n.dst === GATEWAY)?.state ?? [];

/**
 * Counters of the test's own: the node's ext0 ingress (before symroute's guard there, at priority
 * -500), after the guards' hooks, and local delivery.
 */
const countersFor = (side: Side): string => `table netdev nfwtest-ingress {
  counter spoof-in { }
  chain ext0 {
    type filter hook ingress device "ext0" priority -600; policy accept;
    ${side.ip} saddr ${side.spoof} udp dport ${PROBE_PORT} counter name "spoof-in"
  }
}
table inet nfwtest {
  counter spoof-past-guard { }
  counter control-past-guard { }
  counter spoof-delivered { }
  chain after_guard {
    type filter hook prerouting priority -140; policy accept;
    ${side.ip} saddr ${side.spoof} udp dport ${PROBE_PORT} counter name "spoof-past-guard"
    ${side.ip} saddr ${side.client} ${side.ip} daddr ${side.lb} udp dport ${PROBE_PORT} counter name "control-past-guard"
  }
  chain input {
    type filter hook input priority 0; policy accept;
    ${side.ip} saddr ${side.spoof} udp dport ${PROBE_PORT} counter name "spoof-delivered"
  }
}
`;
const COUNTERS = countersFor(V4);
const REMOVE_COUNTERS = "delete table netdev nfwtest-ingress\ndelete table inet nfwtest\n";

function counter(node: Netns, family: string, table: string, name: string): number {
  const out = JSON.parse(mustIn(node, ["nft", "-j", "list", "counter", family, table, name])) as {
    nftables: { counter?: { packets: number } }[];
  };
  const c = out.nftables.find((x) => x.counter !== undefined)?.counter;
  assert.ok(c, `counter ${name}`);
  return c.packets;
}

/** Reads `read` until `done` holds (a bounded number of reads, no sleeping). */
function readUntil<T>(read: () => T, done: (v: T) => boolean, what: string): T {
  let value = read();
  for (let i = 0; i < 2000 && !done(value); i++) value = read();
  assert.ok(done(value), `${what}: still ${JSON.stringify(value)}`);
  return value;
}

const sendUdp = (node: Netns, from: string, to: string): void => {
  const socket = to.includes(":") ? "udp6" : "udp4";
  const script = `const s = require("node:dgram").createSocket("${socket}"); s.bind({ address: "${from}" }, () => s.send("probe", ${PROBE_PORT}, "${to}", (e) => { s.close(); process.exitCode = e ? 1 : 0; }));`;
  const r = inRouter(node, [process.execPath, "-e", script]);
  assert.equal(r.code, 0, r.stderr);
};

/**
 * Sends the spoofed packet, then a control packet on the same path that the guard lets through;
 * once the control is counted past the guard, the spoofed one (sent first, same queue) is through
 * the guard too. Returns whether the spoofed packet got past the guard; it must have arrived.
 */
function spoofPassesGuard(node: Netns, side: Side = V4): boolean {
  const arrived = counter(node, "netdev", "nfwtest-ingress", "spoof-in");
  const passed = counter(node, "inet", "nfwtest", "spoof-past-guard");
  const controls = counter(node, "inet", "nfwtest", "control-past-guard");
  sendUdp(node, side.spoof, side.node);
  sendUdp(node, side.client, side.lb);
  readUntil(
    () => counter(node, "inet", "nfwtest", "control-past-guard"),
    (n) => n > controls,
    "the control packet past the guard",
  );
  assert.equal(
    counter(node, "netdev", "nfwtest-ingress", "spoof-in"),
    arrived + 1,
    "the spoofed packet reached ext0",
  );
  return counter(node, "inet", "nfwtest", "spoof-past-guard") > passed;
}

const GUARD_REMOVAL: Record<string, readonly string[]> = {
  nftables: ["nft", "flush", "chain", "netdev", "symroute", "guard_ext0"],
  iptables: ["iptables", "-t", "mangle", "-F", "SYMROUTE-G-ext0"],
};

for (const firewall of ["nftables", "iptables"] as const) {
  test(
    `strict router, strict ARP, ${firewall}: the gateway resolves through ARP probes and spoofed sources are dropped`,
    { skip },
    async (t) => {
      const node = createNode(t);
      strictTopology(node);
      await startHttpServer(t, node, PORT);
      const config = configFor(firewall);
      const start = node.dump();

      // Before: the request is dropped by ext0's rp_filter (an interface without an address).
      assert.equal(clientReachesLb(node), false, "client → LB before apply");

      const plan = node.symroute(["plan", "-c", config, "-o", "json"]);
      assert.equal(plan.code, 2, plan.stderr);
      const report = JSON.parse(plan.stdout) as {
        guards: { family: number; iif: string; mode: string; exempt: string[] }[];
        arpProbes: { oif: string; targets: string[] }[];
      };
      assert.deepEqual(
        report.guards.map((g) => [g.family, g.iif, g.mode, g.exempt]),
        [[4, "ext0", "strict", ["1.2.3.0/24"]]],
      );
      assert.deepEqual(
        report.arpProbes.map((p) => [p.oif, p.targets]),
        [["ext0", ["1.2.3.1/32"]]],
      );
      const text = node.symroute(["plan", "-c", config]);
      assert.match(
        text.stdout,
        /anti-spoofing IPv4 on ext0: strict source check, except to 1\.2\.3\.0\/24\n    why: /,
      );
      assert.match(text.stdout, /arp probes on ext0 for 1\.2\.3\.1\/32\n    why: /);

      const applied = node.symroute(["apply", "-c", config]);
      assert.equal(applied.code, 0, applied.stderr + applied.stdout);
      assert.equal(clientReachesLb(node), true, "client → LB after apply");
      // Learned by the kernel's own neighbour state machine, nothing pinned on the node.
      assert.ok(
        ["REACHABLE", "STALE", "DELAY", "PROBE"].some((s) => gatewayState(node).includes(s)),
        JSON.stringify(neighbours(node)),
      );
      assert.ok(
        neighbours(node).every((n) => !(n.state ?? []).some((s) => s === "PERMANENT" || s === "NOARP")),
        JSON.stringify(neighbours(node)),
      );

      // The router's MAC changes (no gratuitous ARP): the kernel's own neighbour state machine
      // finds the entry stale, re-resolves through the probes, and traffic flows again. Each try
      // is a whole client request; the node's neighbour timers are short (strictTopology).
      const before = neighbours(node).find((n) => n.dst === GATEWAY)?.lladdr;
      const r = inRouter(node, ["ip", "link", "set", "r-ext0", "address", "02:00:00:00:01:99"]);
      assert.equal(r.code, 0, r.stderr);
      // A new MAC flushes every neighbour entry of the router's interface, its static ones too:
      // the stand-ins for MetalLB's answer and the spoofing host's knowledge come back.
      const mac = ext0Mac(node);
      const again = [LB, NODE].map((a) => `neigh replace ${a} lladdr ${mac} dev r-ext0 nud permanent`);
      const re = inRouter(node, ["ip", "-batch", "-"], `${again.join("\n")}\n`);
      assert.equal(re.code, 0, re.stderr);
      let relearned = false;
      for (let i = 0; i < 10 && !relearned; i++) relearned = clientReachesLb(node);
      assert.ok(relearned, `client → LB after the router's MAC changed: ${JSON.stringify(neighbours(node))}`);
      const after = neighbours(node).find((n) => n.dst === GATEWAY)?.lladdr;
      assert.equal(after, "02:00:00:00:01:99", `learned anew (was ${before ?? "?"})`);

      // Without the probes (removed by hand, the gateway forgotten), the gateway stays unresolved.
      mustIn(node, ["nft", "delete", "table", "arp", "symroute"]);
      mustIn(node, ["ip", "neigh", "flush", "dev", "ext0"]);
      assert.equal(clientReachesLb(node), false, "client → LB without the ARP probes");
      assert.ok(
        ["INCOMPLETE", "FAILED"].some((s) => gatewayState(node).includes(s)),
        JSON.stringify(neighbours(node)),
      );
      assert.equal(node.symroute(["plan", "-c", config]).code, 2, "the missing probes are drift");
      assert.equal(node.symroute(["apply", "-c", config]).code, 0);
      mustIn(node, ["ip", "neigh", "flush", "dev", "ext0"]);
      assert.equal(clientReachesLb(node), true, "client → LB after the repair");

      // Anti-spoofing: a pod-range source entering ext0 arrives and is dropped by the guard.
      mustIn(node, ["nft", "-f", "-"], COUNTERS);
      assert.equal(spoofPassesGuard(node), false, "the spoofed packet is dropped after apply");
      assert.equal(counter(node, "inet", "nfwtest", "spoof-delivered"), 0);
      // Negative control: without the guard it is delivered to the node's management address.
      mustIn(node, GUARD_REMOVAL[firewall] as string[]);
      assert.equal(spoofPassesGuard(node), true, "without the guard the spoofed packet passes");
      readUntil(
        () => counter(node, "inet", "nfwtest", "spoof-delivered"),
        (n) => n === 1,
        "spoofed packet delivered",
      );
      assert.equal(node.symroute(["plan", "-c", config]).code, 2, "the missing guard is drift");
      assert.equal(node.symroute(["apply", "-c", config]).code, 0);
      assert.equal(spoofPassesGuard(node), false, "dropped again after the repair");
      assert.equal(clientReachesLb(node), true, "client → LB with the guard back");
      mustIn(node, ["nft", "-f", "-"], REMOVE_COUNTERS);

      const deleted = node.symroute(["delete"]);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.equal(node.dump(), start);
    },
  );
}

/** Deletes the guard's neighbour-discovery RETURNs by hand. */
function removeNdExemption(node: Netns, firewall: "nftables" | "iptables"): void {
  if (firewall === "nftables") {
    const listing = mustIn(node, ["nft", "-a", "list", "chain", "netdev", "symroute", "guard_ext0"]);
    const handle = /nd-neighbor-solicit.* # handle (\d+)/.exec(listing)?.[1];
    assert.ok(handle, listing);
    mustIn(node, ["nft", "delete", "rule", "netdev", "symroute", "guard_ext0", "handle", handle]);
    return;
  }
  const rules = mustIn(node, ["ip6tables", "-t", "mangle", "-S", "SYMROUTE-G-ext0"])
    .split("\n")
    .filter((l) => l.startsWith("-A "));
  const first = rules.findIndex((l) => l.includes("--icmpv6-type"));
  const count = rules.filter((l) => l.includes("--icmpv6-type")).length;
  assert.ok(first >= 0 && count === 3, rules.join("\n"));
  for (let i = 0; i < count; i++)
    mustIn(node, ["ip6tables", "-t", "mangle", "-D", "SYMROUTE-G-ext0", String(first + 1)]);
}

for (const firewall of ["nftables", "iptables"] as const) {
  test(
    `IPv6, ${firewall}: a spoofed source entering ext0 is delivered before apply and dropped after; client → LB works, through the ND exemption`,
    { skip },
    async (t) => {
      const node = createNode(t, { dualStack: true });
      ipv6Topology(node);
      await startHttpServer(t, node, PORT);
      const config = configFor(firewall, 6);
      const start = node.dump();
      mustIn(node, ["nft", "-f", "-"], countersFor(V6));

      // Before: Linux checks no IPv6 source on ext0; the pod-range packet reaches the node.
      assert.equal(spoofPassesGuard(node, V6), true, "before apply nothing stops it");
      readUntil(
        () => counter(node, "inet", "nfwtest", "spoof-delivered"),
        (n) => n === 1,
        "spoofed packet delivered before apply",
      );
      assert.equal(clientReachesLb(node, V6), false, "client → LB before apply");

      const plan = JSON.parse(node.symroute(["plan", "-c", config, "-o", "json"]).stdout) as {
        guards: { family: number; iif: string; mode: string; exempt: string[] }[];
        arpProbes: unknown[];
      };
      assert.deepEqual(
        plan.guards.map((g) => [g.family, g.iif, g.mode, g.exempt]),
        [[6, "ext0", "strict", ["2001:db8:100::/64"]]],
      );
      assert.deepEqual(plan.arpProbes, [], "IPv6 needs no ARP probes (NDP uses link-local addresses)");
      assert.match(
        node.symroute(["plan", "-c", config]).stdout,
        /Linux has no IPv6 rp_filter: symroute makes ext0 stricter/,
      );

      const applied = node.symroute(["apply", "-c", config]);
      assert.equal(applied.code, 0, applied.stderr + applied.stdout);
      // Neighbour discovery passes the guard (the router solicits from its global address).
      assert.equal(clientReachesLb(node, V6), true, "client → LB after apply");
      assert.equal(spoofPassesGuard(node, V6), false, "the spoofed packet is dropped after apply");
      assert.equal(counter(node, "inet", "nfwtest", "spoof-delivered"), 1, "nothing more delivered");
      mustIn(node, ["nft", "-f", "-"], REMOVE_COUNTERS);

      // Negative control: without the neighbour-discovery exemption the gateway's advertisement
      // (sent from its global address, which only the network's table routes) is dropped.
      removeNdExemption(node, firewall);
      mustIn(node, ["ip", "-6", "neigh", "flush", "dev", "ext0"]);
      assert.equal(clientReachesLb(node, V6), false, "client → LB without the ND exemption");
      const gateway6 = neighbours(node).find((n) => n.dst === "2001:db8:100::1")?.state ?? [];
      assert.ok(
        ["INCOMPLETE", "FAILED"].some((s) => gateway6.includes(s)),
        JSON.stringify(neighbours(node)),
      );
      assert.equal(node.symroute(["plan", "-c", config]).code, 2, "the missing exemption is drift");
      assert.equal(node.symroute(["apply", "-c", config]).code, 0);
      assert.equal(clientReachesLb(node, V6), true, "client → LB after the repair");

      const deleted = node.symroute(["delete"]);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.equal(node.dump(), start);
    },
  );
}

test(
  "switching firewall front end moves the guards and the ARP probes; delete restores the dump",
  { skip },
  (t) => {
    const node = createNode(t, { dualStack: true });
    const start = node.dump();
    const dual = (firewall: string): string => {
      const path = join(dir, `switch-${firewall}.yaml`);
      writeFileSync(
        path,
        `firewall: ${firewall}
networks:
  - name: public
    addresses: [1.2.3.0/24, "2001:db8:100::/64"]
    interface: ext0
    gateway: [1.2.3.1, "2001:db8:100::1"]
`,
      );
      chmodSync(path, 0o644);
      return path;
    };
    for (const firewall of ["nftables", "iptables", "nftables", "iptables"]) {
      const applied = node.symroute(["apply", "-c", dual(firewall)]);
      assert.equal(applied.code, 0, applied.stderr + applied.stdout);
      assert.equal(node.symroute(["plan", "-c", dual(firewall)]).code, 0, `in sync with ${firewall}`);
      const arp = mustIn(node, ["nft", "list", "table", "arp", "symroute"]);
      assert.match(arp, new RegExp(`comment "${firewall} arp probes #`));
      const inet = node.exec(["nft", "list", "table", "inet", "symroute"]);
      const netdev = node.exec(["nft", "list", "table", "netdev", "symroute"]);
      const mangle = mustIn(node, ["ip6tables-save", "-t", "mangle"]);
      if (firewall === "nftables") {
        assert.match(netdev.stdout, /chain guard_ext0 \{\n\s*type filter hook ingress device "ext0"/);
        assert.doesNotMatch(mangle, /SYMROUTE/);
      } else {
        assert.notEqual(inet.code, 0, "no inet table with the iptables front end");
        assert.notEqual(netdev.code, 0, "no netdev table with the iptables front end");
        assert.match(mangle, /-A SYMROUTE-G-ext0 -m rpfilter --invert/);
      }
    }
    const deleted = node.symroute(["delete"]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(node.dump(), start);
  },
);

/**
 * Replaces symroute's mark-restoring rules in the kernel by `mark set 0x2` under the same comment
 * (the comment key, all that verification compared before, stays).
 */
function tamperRestore(node: Netns, firewall: "nftables" | "iptables"): void {
  if (firewall === "nftables") {
    const listing = mustIn(node, ["nft", "-a", "list", "table", "inet", "symroute"]);
    let chain = "";
    let done = 0;
    for (const line of listing.split("\n")) {
      const c = /^\s*chain (\S+) \{/.exec(line);
      if (c !== null) chain = c[1] as string;
      const m = /^\s*meta mark set .* comment "([^"]*restore[^"]*)" # handle (\d+)/.exec(line);
      if (m === null) continue;
      const [, comment, handle] = m as unknown as [string, string, string];
      mustIn(node, [
        "nft",
        "replace",
        "rule",
        "inet",
        "symroute",
        chain,
        "handle",
        handle,
        "meta",
        "mark",
        "set",
        "0x2",
        "comment",
        `"${comment}"`,
      ]);
      done++;
    }
    assert.ok(done > 0, listing);
    return;
  }
  for (const chain of ["SYMROUTE-PRE", "SYMROUTE-OUT"]) {
    const rules = mustIn(node, ["iptables", "-t", "mangle", "-S", chain]).split("\n").slice(1);
    const index = rules.findIndex((l) => l.includes("--restore-mark"));
    assert.ok(index >= 0, rules.join("\n"));
    const comment = /--comment (?:"([^"]*)"|(\S+))/.exec(rules[index] as string);
    const text = comment?.[1] ?? comment?.[2] ?? "";
    mustIn(node, [
      "iptables",
      ...["-t", "mangle", "-R", chain, String(index + 1), "-m", "conntrack", "--ctdir", "REPLY"],
      ...["-m", "comment", "--comment", text, "-j", "MARK", "--set-xmark", "0x2/0xffffffff"],
    ]);
  }
}

for (const firewall of ["nftables", "iptables"] as const) {
  test(
    `${firewall}: a rule of symroute's changed under the same comment is drift, and apply repairs it`,
    { skip },
    async (t) => {
      const node = createNode(t);
      strictTopology(node);
      await startHttpServer(t, node, PORT);
      const config = configFor(firewall);
      assert.equal(node.symroute(["apply", "-c", config]).code, 0);
      assert.equal(clientReachesLb(node), true, "client → LB after apply");

      tamperRestore(node, firewall);
      assert.equal(clientReachesLb(node), false, "client → LB with the restore rule changed");
      const plan = node.symroute(["plan", "-c", config, "-o", "json"]);
      assert.equal(plan.code, 2, `the changed rule is drift: ${plan.stdout}`);
      const changes = (JSON.parse(plan.stdout) as { changes: { kind: string; action: string }[] }).changes;
      assert.deepEqual(
        changes.map((c) => `${c.kind} ${c.action}`),
        ["firewall replace"],
      );
      assert.equal(node.symroute(["apply", "-c", config]).code, 0);
      assert.equal(node.symroute(["plan", "-c", config]).code, 0, "in sync after the repair");
      assert.equal(clientReachesLb(node), true, "client → LB after the repair");
    },
  );
}
