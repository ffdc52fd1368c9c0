// The real CLI in a fresh namespace: nftables classifies new connections by one verdict-map lookup
// (KERNEL-FACTS 12), a new connection gets its network's value in the ct mark while another
// component's bit outside symroute's mask survives, and a removed per-value chain rule is drift that
// the next apply repairs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNode, e2eUnavailable, must } from "../support/netns.ts";
import { ctMarkOf, FOREIGN_BIT, prepareForeignMark, sendFlow } from "../support/ct-mark.ts";

const skip = e2eUnavailable();
const dir = mkdtempSync(join(tmpdir(), "symroute-classify-"));
chmodSync(dir, 0o755);
const CONFIG = join(dir, "three.yaml");
writeFileSync(
  CONFIG,
  `podCIDRs: [10.112.0.0/12]
networks:
  - { name: red, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
  - { name: blue, addresses: [5.6.7.0/24], interface: ext0, gateway: 5.6.7.1 }
  - { name: green, addresses: [9.9.9.0/24], interface: ext0, gateway: 9.9.9.1 }
`,
);
chmodSync(CONFIG, 0o644);

interface NftRule {
  rule?: { chain: string; expr: unknown[]; comment?: string };
}

test(
  "nftables: one map lookup classifies; other bits of the ct mark survive; drift is repaired",
  { skip },
  (t) => {
    const node = createNode(t);
    prepareForeignMark(node);

    const plan = node.symroute(["plan", "-c", CONFIG, "-o", "json"]);
    assert.equal(plan.code, 2, plan.stderr);
    const report = JSON.parse(plan.stdout) as {
      classify: { form: string; size: number };
      networks: { name: string; mark?: number }[];
    };
    assert.equal(report.classify.form, "map");
    assert.equal(report.classify.size, 3);
    const text = node.symroute(["plan", "-c", CONFIG]);
    assert.match(text.stdout, /classify new connections \(nftables\): map, one verdict-map lookup/);
    // Before apply: only the other component's bit (rp_filter off for the moment, so that the node,
    // which does not route 5.6.7.1 back through ext0 yet, accepts the packet).
    node.exec(["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
    sendFlow(node, 3999);
    node.exec(["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"]);
    const before = ctMarkOf(node, 3999);
    assert.equal(before.mark, FOREIGN_BIT, before.entries);
    const applied = node.symroute(["apply", "-c", CONFIG]);
    assert.equal(applied.code, 0, applied.stderr + applied.stdout);

    // In the kernel: one rule in prerouting looks up all three networks.
    const listed = JSON.parse(node.exec(["nft", "-j", "list", "table", "inet", "symroute"]).stdout) as {
      nftables: NftRule[];
    };
    const rules = listed.nftables.flatMap((o) => (o.rule === undefined ? [] : [o.rule]));
    const lookups = rules.filter((r) => JSON.stringify(r.expr).includes('"vmap"') && r.chain === "pre");
    assert.equal(lookups.length, 1, JSON.stringify(lookups));
    assert.equal(JSON.stringify(lookups[0]?.expr).match(/"jump"/g)?.length, 3);

    // Broken before (no symroute mark yet on an earlier connection is not needed): a new flow to blue.
    sendFlow(node, 4000);
    const blue = report.networks.find((n) => n.name === "blue")?.mark as number;
    const { mark, entries } = ctMarkOf(node, 4000);
    assert.equal(mark, FOREIGN_BIT | blue, `conntrack: ${entries}`);

    // Drift: remove the rule of blue's classify chain; plan sees it, apply puts it back.
    const hex = `0x${blue.toString(16)}`;
    const victim = rules.find((r) => r.chain === `c${hex}`) as { handle?: number } | undefined;
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
      `c${hex}`,
      "handle",
      String(victim.handle),
    ]);
    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 2);
    assert.equal(node.symroute(["apply", "-c", CONFIG]).code, 0);
    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 0);
    sendFlow(node, 4001);
    const again = ctMarkOf(node, 4001);
    assert.equal(again.mark, FOREIGN_BIT | blue, again.entries);
  },
);
