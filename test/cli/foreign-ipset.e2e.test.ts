// An ipset under symroute's prefix whose name symroute could not have made (`symroute-a.b`: a dot)
// is someone else's. Before, it was read as symroute's: the firewall half's renderer refused to
// write its name, so every apply with the iptables front end failed (and was rolled back: the ip
// batch had started, docs/architecture.md), and the first record called the node's baseline
// unknown, so that delete refused. Now it is left alone, and delete gives the node back with it.
// A set whose name passes the token guard but is not one symroute makes (`symroute-backup`) is
// someone else's too. Before, it was read as symroute's and destroyed as stale on the next apply;
// with a foreign iptables rule using it, the destroy failed ("in use") and so did every apply.

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

test(
  "a foreign set named like symroute's (symroute-backup), used by a foreign rule, is left alone",
  { skip },
  (t) => {
    const node = createNode(t);
    const created = node.exec(["ipset", "create", "symroute-backup", "hash:net"]);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(node.exec(["ipset", "add", "symroute-backup", "198.51.100.0/24"]).code, 0);
    const rule = [
      "-t",
      "filter",
      "-A",
      "INPUT",
      "-m",
      "set",
      "--match-set",
      "symroute-backup",
      "src",
      "-j",
      "ACCEPT",
    ];
    const used = node.exec(["iptables", ...rule]);
    assert.equal(used.code, 0, used.stderr);
    const before = node.dump();
    const applied = node.symroute(["apply", "-c", CONFIG]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.doesNotMatch(applied.stdout + applied.stderr, /baseline|symroute-backup/);
    const saved = node.exec(["ipset", "save", "symroute-backup"]);
    assert.match(
      saved.stdout,
      /^add symroute-backup 198\.51\.100\.0\/24$/m,
      "the foreign set keeps its content",
    );
    assert.equal(node.symroute(["plan", "-c", CONFIG]).code, 0, "in sync");
    // A second apply (a changed pool: its sets are replaced, the stale ones destroyed) leaves it too.
    const moved = writeConfigFile(
      dir,
      "moved.yaml",
      `firewall: iptables\n${PUBLIC_NETWORK.replaceAll("1.2.3.0/24", "1.2.3.0/25")}`,
    );
    const again = node.symroute(["apply", "-c", moved]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal(
      node.exec(["ipset", "list", "-n", "symroute-backup"]).code,
      0,
      "the foreign set is still there",
    );
    const removed = node.symroute(["delete"]);
    assert.equal(removed.code, 0, removed.stdout + removed.stderr);
    assertSameDump(before, node.dump(), "the node after delete, the foreign set and its rule with it");
  },
);
