// kube-proxy's DNAT targets read from its own rules, on recorded dumps: rules in kube-proxy's layout
// (iptables mode: KUBE-SERVICES -> KUBE-EXT/KUBE-FW -> KUBE-SVC/KUBE-SVL -> KUBE-SEP; nftables mode:
// the service-ips verdict map -> external/service chains -> numgen vmap -> endpoint chains), loaded
// into a namespace and listed by iptables-save 1.8.9 and nft 1.0.6 (test/adapters/fixtures/kube-proxy/).
// Both modes hold the same services, so both readers must find the same targets.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parseIptablesNatServices, parseNftKubeProxyServices } from "../../src/adapters/kube-proxy-parse.ts";
import type { DnatService } from "../../src/model/services.ts";

const fixture = (name: string): string =>
  readFileSync(new URL(`fixtures/kube-proxy/${name}`, import.meta.url), "utf8");

const svc = (address: string, proto: string, port: number, ...backends: string[]): DnatService => ({
  family: address.includes(":") ? 6 : 4,
  address,
  proto,
  port,
  backends: backends.map((b) => {
    const m = /^\[?([^\]]+?)\]?:([0-9]+)$/.exec(b);
    return { address: m?.[1] ?? b, port: Number(m?.[2]) };
  }),
});

const IPV4: DnatService[] = [
  // The load balancer (externalTrafficPolicy Cluster): every endpoint of the service.
  svc("1.2.3.4", "tcp", 80, "10.180.0.5:8080", "10.180.2.5:8080"),
  svc("1.2.3.4", "udp", 53, "10.180.0.5:5353"),
  // externalTrafficPolicy Local behind loadBalancerSourceRanges: the local endpoint for outside
  // clients, every endpoint for the node's own and pods' traffic (sources are not evaluated).
  svc("1.2.3.6", "tcp", 443, "10.180.0.7:8443", "192.168.1.10:8443"),
  svc("172.30.0.41", "tcp", 80, "10.180.0.1:80"),
  svc("172.30.0.44", "tcp", 80, "10.180.0.5:8080", "10.180.2.5:8080"),
  svc("172.30.0.44", "udp", 53, "10.180.0.5:5353"),
  svc("172.30.0.46", "tcp", 443, "10.180.0.7:8443", "192.168.1.10:8443"),
];
const IPV6: DnatService[] = [
  svc("2001:db8:4::4", "tcp", 80, "[fd00:180::5]:8080"),
  svc("fd00:30::44", "tcp", 80, "[fd00:180::5]:8080"),
];

test("iptables mode: every service address with its endpoints, NodePorts left out", () => {
  assert.deepEqual(parseIptablesNatServices(fixture("iptables-nat.txt"), 4), IPV4);
  assert.deepEqual(parseIptablesNatServices(fixture("ip6tables-nat.txt"), 6), IPV6);
});

test("nftables mode: the same services through the service-ips map and the numgen vmaps", () => {
  assert.deepEqual(parseNftKubeProxyServices(fixture("nftables-ip.json"), 4), IPV4);
  assert.deepEqual(parseNftKubeProxyServices(fixture("nftables-ip6.json"), 6), IPV6);
});

test("DNAT rules written straight into the service chain (the lab's stand-ins) are read too", () => {
  const iptables = [
    "*nat",
    ":PREROUTING ACCEPT [0:0]",
    ":KUBE-SERVICES - [0:0]",
    ":KUBE-MARK-MASQ - [0:0]",
    "-A PREROUTING -m comment --comment kubernetes-service-portals -j KUBE-SERVICES",
    "-A KUBE-SERVICES -d 1.2.3.4/32 -p tcp -m tcp --dport 8082 -j KUBE-MARK-MASQ",
    "-A KUBE-SERVICES -d 1.2.3.4/32 -p tcp -m tcp --dport 8082 -j DNAT --to-destination 10.112.2.5:8080",
    // A subnet is no service address; a negated one does not narrow.
    "-A KUBE-SERVICES -d 10.0.0.0/8 -j DNAT --to-destination 10.112.0.9",
    "COMMIT",
  ].join("\n");
  assert.deepEqual(parseIptablesNatServices(iptables, 4), [svc("1.2.3.4", "tcp", 8082, "10.112.2.5:8080")]);

  const nft = {
    nftables: [
      { chain: { family: "ip6", table: "kube-proxy", name: "pre", type: "nat", hook: "prerouting" } },
      { chain: { family: "ip6", table: "kube-proxy", name: "services" } },
      { rule: { chain: "pre", expr: [{ jump: { target: "services" } }] } },
      {
        rule: {
          chain: "services",
          expr: [
            {
              match: {
                op: "==",
                left: { payload: { protocol: "ip6", field: "daddr" } },
                right: "2001:db8:4::4",
              },
            },
            { match: { op: "==", left: { payload: { protocol: "udp", field: "dport" } }, right: 8081 } },
            { dnat: { addr: "2001:db8:1::10", port: 8081 } },
          ],
        },
      },
    ],
  };
  assert.deepEqual(parseNftKubeProxyServices(nft, 6), [
    svc("2001:db8:4::4", "udp", 8081, "[2001:db8:1::10]:8081"),
  ]);
});

test("chains that jump to each other end; nothing is read from other tables or empty input", () => {
  const loop = [
    "*nat",
    ":PREROUTING ACCEPT [0:0]",
    ":A - [0:0]",
    "-A PREROUTING -j A",
    "-A A -j PREROUTING",
    "COMMIT",
  ];
  assert.deepEqual(parseIptablesNatServices(loop.join("\n"), 4), []);
  const mangle = [
    "*mangle",
    ":PREROUTING ACCEPT [0:0]",
    "-A PREROUTING -d 1.2.3.4/32 -j DNAT --to-destination 10.0.0.1",
    "COMMIT",
  ];
  assert.deepEqual(parseIptablesNatServices(mangle.join("\n"), 4), []);
  assert.deepEqual(parseIptablesNatServices("", 4), []);
  assert.deepEqual(parseNftKubeProxyServices("", 4), []);
});
