// An ipset under symroute's prefix whose name symroute could not have made (`symroute-a.b`: a dot)
// is someone else's. Before, it was read as symroute's: the firewall half's renderer refused to
// write its name, so every apply with the iptables front end failed (and was rolled back: the ip
// batch had started, docs/architecture.md), and the first record called the node's baseline
// unknown, so that delete refused. Now it is left alone, and delete gives the node back with it.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  assertSameDump,
  configDir,
  createNode,
  e2eUnavailable,
  writeConfigFile,
  PUBLIC_NETWORK,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-foreign-ipset-");
const CONFIG = writeConfigFile(dir, "public.yaml", `firewall: iptables\n${PUBLIC_NETWORK}`);

test("a set under symroute's prefix that symroute could not have made is left alone", { skip }, (t) => {
  const node = createNode(t);
  const created = node.exec(["ipset", "create", "symroute-a.b", "hash:net"]);
  assert.equal(created.code, 0, created.stderr);
  assert.equal(node.exec(["ipset", "add", "symroute-a.b", "198.51.100.0/24"]).code, 0);
  const before = node.dump();
  const applied = node.symroute(["apply", "-c", CONFIG]);
  assert.equal(applied.code, 0, applied.stdout + applied.stderr);
  assert.doesNotMatch(applied.stdout + applied.stderr, /baseline|symroute-a\.b/);
  assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 0, "in sync");
  const removed = node.symroute(["delete"]);
  assert.equal(removed.code, 0, removed.stdout + removed.stderr);
  assertSameDump(before, node.dump(), "the node after delete, the foreign set with it");
});
