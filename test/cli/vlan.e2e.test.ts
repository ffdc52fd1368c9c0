// `vlan:` end to end: symroute creates the VLAN interface, routes through it, and deletes it again.
// Needs 802.1Q support in the kernel; where it is missing the test says so and skips.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBareNamespace, createNode, e2eUnavailable, run } from "../support/netns.ts";
import { missing } from "../support/skip.ts";

function vlanUnsupported(): string | undefined {
  const ns = createBareNamespace("sr-vlanprobe");
  try {
    const probe = "link add name p0 type veth peer name p1\nlink add link p0 name p0.5 type vlan id 5\n";
    const r = run(["ip", "-n", ns.name, "-batch", "-"], { input: probe });
    return r.code === 0 ? undefined : missing("802.1Q VLAN", r.stderr.trim().split("\n")[0]);
  } finally {
    ns.destroy();
  }
}

const skip = e2eUnavailable() ?? vlanUnsupported();

test("a network with vlan: creates the VLAN interface, and delete removes it", { skip }, (t) => {
  const node = createNode(t);
  const dir = mkdtempSync(join(tmpdir(), "symroute-vlan-"));
  const config = join(dir, "vlan.yaml");
  writeFileSync(
    config,
    "networks:\n  - { name: public, addresses: [1.2.3.0/24], interface: eth0.100, vlan: { parent: eth0, id: 100 }, gateway: 1.2.3.1 }\n",
  );
  const start = node.dump();
  const applied = node.symroute(["apply", "-c", config]);
  assert.equal(applied.code, 0, applied.stderr);
  const link = JSON.parse(node.exec(["ip", "-j", "-d", "link", "show", "eth0.100"]).stdout) as {
    linkinfo?: { info_kind?: string; info_data?: { id?: number } };
  }[];
  assert.equal(link[0]?.linkinfo?.info_kind, "vlan");
  assert.equal(link[0]?.linkinfo?.info_data?.id, 100);
  assert.equal(node.symroute(["plan", "-c", config]).code, 0);
  // The next apply keeps the VLAN it made (test/engine/vlan-lifecycle.test.ts without 802.1Q).
  const again = node.symroute(["apply", "-c", config]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(node.exec(["ip", "-j", "link", "show", "eth0.100"]).code, 0, "eth0.100 is still there");
  assert.equal(node.symroute(["delete"]).code, 0);
  assert.equal(node.dump(), start);
});
