// The article's node against a strict upstream router (KERNEL-FACTS 10, 11), in both firewall front
// ends, with strict ARP on and nothing pinned on the node: the router (rp_filter 1) ignores ARP
// requests whose sender is outside its subnet, so the node resolves its gateway only through
// symroute's ARP probes; and symroute's anti-spoofing guard drops a pod-range source entering ext0.
// Each protection is shown to be what makes the difference: removed by hand, the traffic fails (or
// the spoofed packet arrives), `plan` reports the drift, and `apply` repairs it.

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNode, e2eUnavailable, must, run, type Netns } from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = mkdtempSync(join(tmpdir(), "symroute-strict-"));
chmodSync(dir, 0o755);

const CLIENT = "203.0.113.10";
const LB = "1.2.3.4";
const GATEWAY = "1.2.3.1";
const NODE = "192.168.1.10";
const SPOOF = "10.112.0.5";
const PORT = 8081;
const PROBE_PORT = 9999;

const configFor = (firewall: string): string => {
  const path = join(dir, `${firewall}.yaml`);
  writeFileSync(
    path,
    `firewall: ${firewall}
podCIDRs: [10.112.0.0/12]
networks:
  - name: public
    addresses: [1.2.3.0/24]
    interface: ext0
    gateway: ${GATEWAY}
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
function strictTopology(node: Netns): void {
  const ext0Mac = (JSON.parse(mustIn(node, ["ip", "-j", "link", "show", "ext0"])) as { address: string }[])[0]
    ?.address;
  assert.ok(ext0Mac);
  const router = [
    "addr add 1.2.3.1/24 dev r-ext0",
    `addr add ${CLIENT}/32 dev lo`,
    `addr add ${SPOOF}/32 dev lo`,
    "link set lo up",
    `neigh replace ${LB} lladdr ${ext0Mac} dev r-ext0 nud permanent`,
    `rule add from ${SPOOF} lookup 99 priority 99`,
    `route add ${NODE}/32 dev r-ext0 table 99`,
    // The spoofing host knows the node's MAC (it is on the segment); the node never answers ARP on
    // ext0 for an address of eth0 under strict ARP.
    `neigh replace ${NODE} lladdr ${ext0Mac} dev r-ext0 nud permanent`,
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

/** The node's own HTTP server (a host-network backend), up until the test ends. */
async function startServer(t: TestContext, node: Netns): Promise<void> {
  const script = `require("node:http").createServer((q, r) => r.end("ok")).listen(${PORT}, "0.0.0.0", () => console.log("ready"))`;
  const child = spawn("ip", ["netns", "exec", node.name, process.execPath, "-e", script], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  t.after(() => child.kill());
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes("ready")) resolve();
    });
    child.on("exit", (code) => reject(new Error(`the server exited (${code})`)));
  });
}

/** client → LB through the strict router: whether the answer came back. */
const clientReachesLb = (node: Netns): boolean =>
  inRouter(node, ["curl", "-s", "--max-time", "3", "--interface", CLIENT, `http://${LB}:${PORT}/`]).stdout ===
  "ok";

interface Neighbour {
  dst: string;
  lladdr?: string;
  state?: string[];
}
const neighbours = (node: Netns): Neighbour[] =>
  JSON.parse(mustIn(node, ["ip", "-j", "neigh", "show"])) as Neighbour[];
const gatewayState = (node: Netns): string[] => neighbours(node).find((n) => n.dst === GATEWAY)?.state ?? [];

/** Counters of the test's own: the node's ext0 ingress, after the guards' hooks, and local delivery. */
const COUNTERS = `table netdev nfwtest-ingress {
  counter spoof-in { }
  chain ext0 {
    type filter hook ingress device "ext0" priority -500; policy accept;
    ip saddr ${SPOOF} udp dport ${PROBE_PORT} counter name "spoof-in"
  }
}
table inet nfwtest {
  counter spoof-past-guard { }
  counter control-past-guard { }
  counter spoof-delivered { }
  chain after_guard {
    type filter hook prerouting priority -140; policy accept;
    ip saddr ${SPOOF} udp dport ${PROBE_PORT} counter name "spoof-past-guard"
    ip saddr ${CLIENT} ip daddr ${LB} udp dport ${PROBE_PORT} counter name "control-past-guard"
  }
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr ${SPOOF} udp dport ${PROBE_PORT} counter name "spoof-delivered"
  }
}
`;
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
  const script = `const s = require("node:dgram").createSocket("udp4"); s.bind({ address: "${from}" }, () => s.send("probe", ${PROBE_PORT}, "${to}", (e) => { s.close(); process.exitCode = e ? 1 : 0; }));`;
  const r = inRouter(node, [process.execPath, "-e", script]);
  assert.equal(r.code, 0, r.stderr);
};

/**
 * Sends the spoofed packet, then a control packet on the same path that the guard lets through;
 * once the control is counted past the guard, the spoofed one (sent first, same queue) is through
 * the guard too. Returns whether the spoofed packet got past the guard; it must have arrived.
 */
function spoofPassesGuard(node: Netns): boolean {
  const arrived = counter(node, "netdev", "nfwtest-ingress", "spoof-in");
  const passed = counter(node, "inet", "nfwtest", "spoof-past-guard");
  const controls = counter(node, "inet", "nfwtest", "control-past-guard");
  sendUdp(node, SPOOF, NODE);
  sendUdp(node, CLIENT, LB);
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
  nftables: ["nft", "flush", "chain", "inet", "symroute", "guard"],
  iptables: ["iptables", "-t", "mangle", "-F", "SYMROUTE-GUARD"],
};

for (const firewall of ["nftables", "iptables"] as const) {
  test(
    `strict router, strict ARP, ${firewall}: the gateway resolves through ARP probes and spoofed sources are dropped`,
    { skip },
    async (t) => {
      const node = createNode(t);
      strictTopology(node);
      await startServer(t, node);
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
