// Foreign state (issue 7, item 3): a node pre-loaded with kube-proxy-like and Calico-like objects
// (rules at priority 99/100/2500, routes with proto 80 in main and tables 1, 100, 250, cali* veths,
// iptables chains in raw/mangle/nat/filter, nft tables, marks in 0xffff0000 and 0xc000) and with
// per-interface rp_filter/arp values. After apply every foreign object is still there unchanged and
// every other interface keeps its effective rp_filter/arp values, also at each step of the sysctl
// writes; after delete the node is byte-identical. Both firewall front ends.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  assertSameDump,
  createNamespaceNode,
  e2eUnavailable,
  must,
  type Netns,
  writeConfigFile,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const fixture = (name: string): string =>
  readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");

/** Per-interface values that make the effective value differ from the interface's own. */
const SYSCTLS: readonly string[] = [
  "net.ipv4.conf.all.rp_filter=1",
  "net.ipv4.conf.all.arp_ignore=1",
  "net.ipv4.conf.eth0.rp_filter=0",
  "net.ipv4.conf.eth0.arp_ignore=0",
  "net.ipv4.conf.eth0.arp_announce=2",
  "net.ipv4.conf.cali1234abcd.rp_filter=2",
  "net.ipv4.conf.cali1234abcd.arp_ignore=2",
  "net.ipv4.conf.cali1234abcd.arp_announce=1",
  "net.ipv4.conf.cali1234abcd.arp_filter=1",
  "net.ipv4.conf.cali5678efgh.rp_filter=0",
  "net.ipv4.conf.cali5678efgh.arp_ignore=8",
];

function preload(node: Netns): void {
  must(
    ["ip", "-batch", "-"],
    `link add cali1234abcd netns ${node.name} type veth peer name pod1 netns ${node.peer}\n` +
      `link add cali5678efgh netns ${node.name} type veth peer name pod2 netns ${node.peer}\n`,
  );
  for (const [argv, input] of [
    [["ip", "link", "set", "cali1234abcd", "up"], undefined],
    [["ip", "link", "set", "cali5678efgh", "up"], undefined],
    [["ip", "-batch", "-"], fixture("foreign-ip.batch")],
    [["iptables-restore", "--noflush"], fixture("foreign-iptables.rules")],
    [["ip6tables-restore", "--noflush"], fixture("foreign-ip6tables.rules")],
    [["nft", "-f", "-"], fixture("foreign.nft")],
    [["sysctl", "-qw", ...SYSCTLS], undefined],
  ] as const) {
    const r = node.exec(argv, input);
    assert.equal(r.code, 0, `${argv.join(" ")}: ${r.stderr}`);
  }
}

type Sysctls = Map<string, number>;

function readSysctls(node: Netns): Sysctls {
  const out: Sysctls = new Map();
  for (const line of node.exec(["sysctl", "-a"]).stdout.split("\n")) {
    const m = /^net\.ipv4\.conf\.([^.]+)\.(rp_filter|arp_ignore|arp_announce|arp_filter) = (\d+)$/.exec(line);
    if (m !== null) out.set(`${m[1]}/${m[2]}`, Number(m[3]));
  }
  return out;
}

/** What the kernel uses: max(all, iface) for rp_filter, arp_ignore, arp_announce; all OR iface for arp_filter. */
function effective(values: Sysctls, ifaces: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const iface of ifaces) {
    for (const key of ["rp_filter", "arp_ignore", "arp_announce", "arp_filter"]) {
      const all = values.get(`all/${key}`) ?? 0;
      const own = values.get(`${iface}/${key}`) ?? 0;
      out[`${iface}.${key}`] = key === "arp_filter" ? Number(all !== 0 || own !== 0) : Math.max(all, own);
    }
  }
  return out;
}

/** Applies symroute's sysctl writes one by one and checks the effective values after each. */
function checkEveryStep(
  start: Sysctls,
  writes: readonly { name: string; value: string }[],
  ifaces: readonly string[],
  what: string,
): void {
  const expected = effective(start, ifaces);
  const values = new Map(start);
  for (const [i, w] of writes.entries()) {
    const m = /^net\/ipv4\/conf\/([^/]+)\/([a-z_]+)$/.exec(w.name);
    if (m === null) continue;
    values.set(`${m[1]}/${m[2]}`, Number(w.value));
    assert.deepEqual(
      effective(values, ifaces),
      expected,
      `${what}: after write ${i + 1} (${w.name}=${w.value})`,
    );
  }
}

function payloadSysctls(json: string): { name: string; value: string }[] {
  return (JSON.parse(json) as { payloads: { sysctls: { name: string; value: string }[] } }).payloads.sysctls;
}

/** The dump without symroute's own objects: proto 201 routes and rules, its nft table, its chains. */
function foreignOnly(dump: string): string {
  return dump
    .split(/^## /m)
    .filter((section) => !section.startsWith("sysctl"))
    .map((section) => {
      const [head = "", ...body] = section.split("\n");
      const text = body.join("\n").trim();
      if (text.startsWith("[")) {
        const items = (JSON.parse(text) as { protocol?: string }[]).filter((x) => x.protocol !== "201");
        return `${head}\n${JSON.stringify(items)}`;
      }
      const lines: string[] = [];
      let skipUntil: string | undefined;
      for (const line of text.split("\n")) {
        if (skipUntil !== undefined) {
          if (line === skipUntil) skipUntil = undefined;
          continue;
        }
        const block = /^(\s*)(table (?:inet|arp|netdev) symroute|chain SYMROUTE-\S+) \{$/.exec(line);
        if (block !== null) {
          skipUntil = `${block[1]}}`;
          continue;
        }
        if (!/SYMROUTE|symroute/.test(line)) lines.push(line);
      }
      return `${head}\n${lines.join("\n").replace(/\n{2,}/g, "\n")}`;
    })
    .join("\n## ");
}

const config = (firewall: string): string => `podCIDRs: [10.112.0.0/12]
firewall: ${firewall}
kubeProxyMode: iptables
networks:
  - name: public
    addresses: [203.0.113.0/24, "2001:db8:100::/64"]
    interface: ext0
    gateway: [203.0.113.1, "2001:db8:100::1"]
  - name: second
    addresses: [198.51.100.0/25]
    interface: ext0
    gateway: 198.51.100.1
`;

for (const firewall of ["nftables", "iptables"] as const) {
  test(
    `kube-proxy and Calico objects survive apply and delete byte for byte (${firewall})`,
    { skip },
    (t) => {
      const node = createNamespaceNode({ prefix: "sr-foreign", dualStack: true });
      t.after(() => node.destroy());
      preload(node);
      const cfg = writeConfigFile(node.stateDir, "foreign.yaml", config(firewall));
      const others = ["lo", "eth0", "cali1234abcd", "cali5678efgh"];
      const original = node.dump();
      const start = readSysctls(node);

      const dry = node.symroute(["apply", "-c", cfg, "--dry-run", "-o", "json"]);
      assert.equal(dry.code, 0, dry.stderr);
      const applyWrites = payloadSysctls(dry.stdout);
      assert.ok(
        applyWrites.some((w) => w.name === "net/ipv4/conf/all/rp_filter" && w.value === "0"),
        "conf.all.rp_filter is lowered",
      );
      checkEveryStep(start, applyWrites, others, "apply");

      const applied = node.symroute(["apply", "-c", cfg]);
      assert.equal(applied.code, 0, applied.stderr + applied.stdout);
      const during = node.dump();
      assert.notEqual(during, original);
      assertSameDump(foreignOnly(original), foreignOnly(during), "foreign objects changed by apply");
      const appliedSysctls = readSysctls(node);
      assert.deepEqual(effective(appliedSysctls, others), effective(start, others));
      assert.equal(node.symroute(["plan", "-c", cfg]).code, 0);

      const dryDelete = node.symroute(["delete", "--dry-run", "-o", "json"]);
      assert.equal(dryDelete.code, 0, dryDelete.stderr);
      checkEveryStep(appliedSysctls, payloadSysctls(dryDelete.stdout), others, "delete");
      const deleted = node.symroute(["delete"]);
      assert.equal(deleted.code, 0, deleted.stderr);
      const after = node.dump();
      assertSameDump(original, after, "delete did not restore the node");
    },
  );
}
