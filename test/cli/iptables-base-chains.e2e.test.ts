// iptables-nft makes a built-in chain of the mangle table on its first use, also in a table that is
// there already: kube-proxy's and kubelet's mangle table holds only their own chains
// (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY), no PREROUTING or OUTPUT. symroute's first restore
// made those two base chains, and delete left them behind, empty (measured: `nft list table ip
// mangle` listed `chain PREROUTING { type filter hook prerouting priority mangle; policy accept; }`
// after delete). Now the chains symroute's restore made are recorded (iptablesChainsCreated) and
// removed again when empty; a chain that was there, or that holds another tool's rule, stays.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  assertSameDump,
  configDir,
  createNode,
  e2eUnavailable,
  stateFileOf,
  type Netns,
  writeConfigFile,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-ipt-chains-");
const dualStack = writeConfigFile(
  dir,
  "dual.yaml",
  `firewall: iptables
networks:
  - name: red
    addresses: [1.2.3.0/24, "2001:db8:100::/64"]
    interface: ext0
    gateway: [1.2.3.1, "2001:db8:100::1"]
`,
);
const ipv4 = writeConfigFile(
  dir,
  "ipv4.yaml",
  `firewall: iptables
networks:
  - { name: red, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
`,
);

function iptables(node: Netns, family: 4 | 6, argv: readonly string[]): void {
  const made = node.exec([family === 4 ? "iptables" : "ip6tables", "-t", "mangle", ...argv]);
  assert.equal(made.code, 0, made.stderr);
}

/** kube-proxy's and kubelet's mangle chains, as iptables-nft leaves them: no built-in chain. */
function kubeProxyMangle(node: Netns, families: readonly (4 | 6)[]): void {
  for (const family of families)
    for (const chain of ["KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"]) iptables(node, family, ["-N", chain]);
}

/** The chains nft lists in a family's mangle table. */
function mangleChains(node: Netns, family: 4 | 6): string[] {
  const listed = node.exec(["nft", "list", "table", family === 4 ? "ip" : "ip6", "mangle"]);
  if (listed.code !== 0) return [];
  return [...listed.stdout.matchAll(/^\s*chain (\S+) \{/gm)].map((m) => m[1] as string).sort();
}

const savedChains = (node: Netns): unknown =>
  (JSON.parse(readFileSync(stateFileOf(node), "utf8")) as { iptablesChainsCreated?: unknown })
    .iptablesChainsCreated;

test(
  "iptables: kube-proxy's mangle table without built-in chains, apply then delete: the node is as before",
  { skip },
  (t) => {
    const node = createNode(t, { dualStack: true });
    kubeProxyMangle(node, [4, 6]);
    assert.deepEqual(mangleChains(node, 4), ["KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"]);
    const start = node.dump();
    const applied = node.symroute(["apply", "-c", dualStack]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.deepEqual(savedChains(node), ["4:OUTPUT", "4:PREROUTING", "6:OUTPUT", "6:PREROUTING"]);
    // An apply in sync creates nothing and keeps the record.
    const again = node.symroute(["apply", "-c", dualStack]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.deepEqual(savedChains(node), ["4:OUTPUT", "4:PREROUTING", "6:OUTPUT", "6:PREROUTING"]);
    const deleted = node.symroute(["delete"]);
    assert.equal(deleted.code, 0, deleted.stdout + deleted.stderr);
    assert.deepEqual(mangleChains(node, 4), ["KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"]);
    assertSameDump(start, node.dump(), "after apply and delete");
  },
);

test(
  "iptables: a built-in chain that was there stays, one symroute made that holds another tool's rule stays",
  { skip },
  (t) => {
    const node = createNode(t);
    kubeProxyMangle(node, [4]);
    // PREROUTING was there with kube-proxy's rule; OUTPUT was not.
    iptables(node, 4, ["-A", "PREROUTING", "-j", "KUBE-KUBELET-CANARY"]);
    const applied = node.symroute(["apply", "-c", ipv4]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.deepEqual(savedChains(node), ["4:OUTPUT"]);
    // Another tool puts a rule in the OUTPUT chain symroute made: it is in use, not symroute's to remove.
    iptables(node, 4, ["-A", "OUTPUT", "-j", "KUBE-KUBELET-CANARY"]);
    const deleted = node.symroute(["delete"]);
    assert.equal(deleted.code, 0, deleted.stdout + deleted.stderr);
    const rules = node.exec(["iptables-save", "-t", "mangle"]).stdout;
    assert.match(rules, /^-A PREROUTING -j KUBE-KUBELET-CANARY$/m);
    assert.match(rules, /^-A OUTPUT -j KUBE-KUBELET-CANARY$/m);
    assert.doesNotMatch(rules, /SYMROUTE/);
    assert.deepEqual(mangleChains(node, 4), [
      "KUBE-IPTABLES-HINT",
      "KUBE-KUBELET-CANARY",
      "OUTPUT",
      "PREROUTING",
    ]);
  },
);

test(
  "iptables: a mangle table symroute made that another tool uses since keeps only that tool's chains after delete",
  { skip },
  (t) => {
    const node = createNode(t);
    const applied = node.symroute(["apply", "-c", ipv4]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    // kube-proxy starts after symroute: its chains go into the table symroute's restore made.
    kubeProxyMangle(node, [4]);
    const deleted = node.symroute(["delete"]);
    assert.equal(deleted.code, 0, deleted.stdout + deleted.stderr);
    assert.deepEqual(mangleChains(node, 4), ["KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"]);
  },
);
