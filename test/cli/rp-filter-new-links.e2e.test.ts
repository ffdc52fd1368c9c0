// Links that come and go while symroute has conf.all.rp_filter lowered (and conf.default raised to
// the old conf.all, so that they keep their anti-spoofing). Measured on Linux 6.18: a link created
// after a write to conf.default counts the value it inherits as set by itself, so writing
// conf.default back on delete does not reach it (KERNEL-FACTS 13 holds only for a link that
// inherited before the first write). So after delete:
// - a link symroute recorded (it raised its value), deleted and re-created meanwhile, gets its
//   recorded value back;
// - a link created meanwhile keeps the raised value (symroute never wrote it, and cannot tell an
//   inherited value from one its owner set, a CNI's on a pod's veth); its effective rp_filter,
//   max(conf.all, own) with conf.all restored, is the one it would have had without symroute.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  configDir,
  createNode,
  e2eUnavailable,
  must,
  type Netns,
  writeConfigFile,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const CONFIG = writeConfigFile(
  configDir("symroute-rp-links-"),
  "gateway.yaml",
  `networks:
  - { name: red, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
`,
);

const rpFilter = (node: Netns, conf: string): number =>
  Number(must(["ip", "netns", "exec", node.name, "sysctl", "-n", `net.ipv4.conf.${conf}.rp_filter`]).trim());

/** What the kernel checks: max(conf.all, conf.IFACE) (KERNEL-FACTS 5). */
const effective = (node: Netns, conf: string): number =>
  Math.max(rpFilter(node, "all"), rpFilter(node, conf));

test("rp_filter of links re-created or created while applied, after delete", { skip }, (t) => {
  const node = createNode(t);
  const veth = (name: string): void => {
    must(["ip", "-n", node.name, "link", "add", name, "type", "veth", "peer", "name", `${name}p`]);
  };
  veth("eth1");
  assert.deepEqual([rpFilter(node, "all"), rpFilter(node, "default"), rpFilter(node, "eth1")], [1, 0, 0]);

  const applied = node.symroute(["apply", "-c", CONFIG]);
  assert.equal(applied.code, 0, applied.stdout + applied.stderr);
  assert.deepEqual([rpFilter(node, "all"), rpFilter(node, "default"), rpFilter(node, "eth1")], [0, 1, 1]);
  must(["ip", "-n", node.name, "link", "del", "eth1"]);
  veth("eth1");
  veth("pod0");
  // Both inherit the raised conf.default: strict, as every link was before the apply.
  assert.deepEqual([effective(node, "eth1"), effective(node, "pod0")], [1, 1]);
  const plan = node.symroute(["plan", "-c", CONFIG]);
  assert.equal(plan.code, 0, plan.stdout + plan.stderr);

  const deleted = node.symroute(["delete"]);
  assert.equal(deleted.code, 0, deleted.stdout + deleted.stderr);
  assert.deepEqual([rpFilter(node, "all"), rpFilter(node, "default")], [1, 0]);
  assert.equal(rpFilter(node, "eth1"), 0, "the recorded link's value from before symroute");
  assert.equal(rpFilter(node, "pod0"), 1, "a link created meanwhile keeps the value it inherited");
  assert.equal(
    effective(node, "pod0"),
    1,
    "its effective value is the one it would have had without symroute",
  );
  // The kernel's part: a link created now inherits conf.default's 0, and writing conf.default
  // again does not reach pod0.
  veth("pod1");
  assert.equal(rpFilter(node, "pod1"), 0);
  must(["ip", "netns", "exec", node.name, "sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0"]);
  assert.equal(rpFilter(node, "pod0"), 1);
});
