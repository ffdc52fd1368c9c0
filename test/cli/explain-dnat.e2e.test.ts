// explain shows kube-proxy's real backends (issue 17 item 6): with kube-proxy's rules installed in a
// namespace (iptables mode for IPv4: KUBE-SERVICES -> KUBE-EXT -> KUBE-SVC -> KUBE-SEP DNAT, two
// endpoints; nftables mode for IPv6: the service-ips map -> service chain -> endpoint chain), a
// packet to the LB address is traced to the backend the rules name, the others are listed, a port
// the service does not have is not DNAT'ed, --dnat-to still chooses, and a snapshot carries the same.

import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import {
  CLI,
  configDir,
  createNode,
  e2eUnavailable,
  must,
  PUBLIC_NETWORK,
  writeConfigFile,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-explain-dnat-");
const CONFIG = writeConfigFile(dir, "public.yaml", PUBLIC_NETWORK);

const IPTABLES_NAT = `*nat
:KUBE-SERVICES - [0:0]
:KUBE-EXT-WEB - [0:0]
:KUBE-SVC-WEB - [0:0]
:KUBE-SEP-HOST - [0:0]
:KUBE-SEP-POD - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SERVICES -d 1.2.3.4/32 -p tcp -m comment --comment "ns/web:http loadbalancer IP" -m tcp --dport 80 -j KUBE-EXT-WEB
-A KUBE-EXT-WEB -j KUBE-MARK-MASQ
-A KUBE-EXT-WEB -j KUBE-SVC-WEB
-A KUBE-SVC-WEB -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-HOST
-A KUBE-SVC-WEB -j KUBE-SEP-POD
-A KUBE-SEP-HOST -p tcp -m tcp -j DNAT --to-destination 192.168.1.10:8081
-A KUBE-SEP-POD -p tcp -m tcp -j DNAT --to-destination 192.168.1.50:8080
COMMIT
`;

const NFT_IP6 = `table ip6 kube-proxy {
  map service-ips { type ipv6_addr . inet_proto . inet_service : verdict; }
  chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; jump services; }
  chain nat-output { type nat hook output priority -100; policy accept; jump services; }
  chain services { ip6 daddr . meta l4proto . th dport vmap @service-ips; }
  chain service-WEB6 { numgen random mod 1 vmap { 0 : goto endpoint-WEB6 }; }
  chain endpoint-WEB6 { meta l4proto tcp dnat to [2001:db8:1::10]:8081; }
}
add element ip6 kube-proxy service-ips { 2001:db8:4::4 . tcp . 80 : goto service-WEB6 }
`;

interface Explained {
  result: string;
  dev: string | null;
  dnat: { services: string[]; backends: string[]; tracedTo: string } | null;
  notes: string[];
}

test("explain traces an LB address through kube-proxy's DNAT rules read from the node", { skip }, (t) => {
  const node = createNode(t, { dualStack: true });
  // A node forwards (to pods and to backends on other nodes).
  must(["ip", "netns", "exec", node.name, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  const applied = node.symroute(["apply", "-c", CONFIG]);
  assert.equal(applied.code, 0, applied.stderr);
  const explain = (args: readonly string[]): Explained => {
    const r = node.symroute(["explain", ...args, "-o", "json"]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Explained;
  };
  /** A TCP request from the client arriving on ext0 for the LB address's port. */
  const toPort = (port: number): string[] => [
    "--from",
    "203.0.113.10",
    "--to",
    "1.2.3.4",
    "--iif",
    "ext0",
    "--proto",
    "tcp",
    "--dport",
    String(port),
  ];
  const ask = toPort(80);

  // Without kube-proxy's rules: the answer is for the LB address itself, and says so.
  const none = explain(ask);
  assert.equal(none.dnat, null);
  assert.match(
    none.notes.join("\n"),
    /without kube-proxy's rules for it \(none found: iptables nat: 0 DNAT'ed destination/,
  );

  must(["ip", "netns", "exec", node.name, "iptables-restore", "--noflush"], IPTABLES_NAT);
  must(["ip", "netns", "exec", node.name, "nft", "-f", "-"], NFT_IP6);

  const arriving = explain(ask);
  assert.deepEqual(arriving.dnat, {
    services: ["1.2.3.4:80/tcp → 192.168.1.10:8081", "1.2.3.4:80/tcp → 192.168.1.50:8080"],
    backends: ["192.168.1.10", "192.168.1.50"],
    tracedTo: "192.168.1.10",
  });
  assert.equal(arriving.result, "local");
  assert.match(
    arriving.notes.join("\n"),
    /kube-proxy picks among 2 backends, ask about the others with --dnat-to \(192\.168\.1\.50\)/,
  );
  const text = node.symroute(["explain", ...ask]);
  assert.match(
    text.stdout,
    /^note: kube-proxy DNATs 1\.2\.3\.4:80\/tcp → 192\.168\.1\.10:8081, 1\.2\.3\.4:80\/tcp → 192\.168\.1\.50:8080 \(read from the node's rules\)/m,
  );

  // --dnat-to still chooses the backend; the other one is routed out of eth0.
  const chosen = explain([...ask, "--dnat-to", "192.168.1.50"]);
  assert.equal(chosen.dnat, null);
  assert.equal(chosen.result, "unicast", JSON.stringify(chosen));
  assert.equal(chosen.dev, "eth0");

  // A port the service does not have is not DNAT'ed, and the answer says which ones are.
  const otherPort = explain(toPort(9999));
  assert.equal(otherPort.dnat, null);
  assert.match(
    otherPort.notes.join("\n"),
    /kube-proxy DNATs 1\.2\.3\.4 only for 1\.2\.3\.4:80\/tcp: this packet \(tcp port 9999\) is not DNAT'ed/,
  );

  // Sent by the node itself: kube-proxy's OUTPUT DNAT re-routes it to the backend.
  const local = explain(["--to", "1.2.3.4", "--proto", "tcp", "--dport", "80"]);
  assert.equal(local.dnat?.tracedTo, "192.168.1.10");
  assert.equal(local.result, "local");

  // IPv6 through kube-proxy's nftables table.
  const v6 = explain([
    "--from",
    "2001:db8:c::10",
    "--to",
    "2001:db8:4::4",
    "--iif",
    "ext0",
    "--proto",
    "tcp",
    "--dport",
    "80",
  ]);
  assert.deepEqual(v6.dnat?.services, ["[2001:db8:4::4]:80/tcp → [2001:db8:1::10]:8081"]);
  assert.equal(v6.result, "local");

  // A snapshot carries kube-proxy's targets: explain on it answers the same elsewhere.
  const snap = node.symroute(["snapshot"]);
  assert.equal(snap.code, 0, snap.stderr);
  const file = join(dir, `node-${node.name}.json`);
  writeFileSync(file, snap.stdout);
  const offline = JSON.parse(
    must([process.execPath, CLI, "explain", "--state", file, ...ask, "-o", "json"]),
  ) as Explained;
  assert.deepEqual(offline.dnat, arriving.dnat);
  assert.equal(offline.result, "local");
});
