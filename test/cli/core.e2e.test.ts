// The real CLI in a fresh network namespace per test: plan exit codes, apply, idempotence, delete
// round trip byte for byte, foreign objects untouched, bad input and missing privileges refused.

import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { asNobody, CLI, createNode, e2eUnavailable, must, nobodysStateDir, run } from "../support/netns.ts";
import { PUBLIC_NETWORK_WITH_PODS } from "../support/config.ts";

const skip = e2eUnavailable();
const dir = mkdtempSync(join(tmpdir(), "symroute-cfg-"));
chmodSync(dir, 0o755);
function configFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, 0o644);
  return path;
}

const PUBLIC = configFile("public.yaml", PUBLIC_NETWORK_WITH_PODS);

test("apply -o json reports inSync true once it applied and verified", { skip }, (t) => {
  const node = createNode(t);
  const applied = node.symroute(["apply", "-c", PUBLIC, "-o", "json"]);
  assert.equal(applied.code, 0, applied.stderr);
  const report = JSON.parse(applied.stdout) as { applied: boolean; inSync: boolean; changes: unknown[] };
  assert.equal(report.applied, true);
  assert.ok(report.changes.length > 0, "the changes it applied are listed");
  assert.equal(report.inSync, true);
});

test("plan says 2 before apply and 0 after; a second apply changes nothing", { skip }, (t) => {
  const node = createNode(t);
  const before = node.symroute(["plan", "-c", PUBLIC]);
  assert.equal(before.code, 2, before.stderr);
  assert.match(before.stdout, /public IPv4 1\.2\.3\.0\/24 on ext0: policy-routing/);
  const applied = node.symroute(["apply", "-c", PUBLIC]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /Applied and verified/);
  assert.equal(node.symroute(["plan", "-c", PUBLIC]).code, 0);
  const again = node.symroute(["apply", "-c", PUBLIC]);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /already converged/);
  assert.doesNotMatch(again.stdout, /In sync/, "one message for a converged node, not two");
  const rules = JSON.parse(node.exec(["ip", "-j", "rule"]).stdout) as { fwmark?: string; table?: string }[];
  assert.ok(
    rules.some((r) => r.fwmark === "0x1" && r.table === "20000"),
    JSON.stringify(rules),
  );
  const json = JSON.parse(node.symroute(["plan", "-c", PUBLIC, "-o", "json"]).stdout) as {
    inSync: boolean;
    networks: { method: string }[];
  };
  assert.equal(json.inSync, true);
  assert.equal(json.networks[0]?.method, "connmark");
});

for (const firewall of ["nftables", "iptables"] as const) {
  test(`delete restores the namespace byte for byte (${firewall}, dual-stack)`, { skip }, (t) => {
    const node = createNode(t, { dualStack: true });
    const cfg = configFile(
      `dual-${firewall}.yaml`,
      `firewall: ${firewall}
networks:
  - name: public
    addresses: [1.2.3.0/24, "2001:db8:100::/64"]
    interface: ext0
    gateway: [1.2.3.1, "2001:db8:100::1"]
`,
    );
    const start = node.dump();
    const applied = node.symroute(["apply", "-c", cfg]);
    assert.equal(applied.code, 0, applied.stderr + applied.stdout);
    const during = node.dump();
    assert.notEqual(during, start);
    assert.match(node.exec(["ip", "-6", "rule"]).stdout, /fwmark 0x1\/0xff lookup 20000/);
    assert.equal(node.symroute(["plan", "-c", cfg]).code, 0);
    const deleted = node.symroute(["delete"]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(node.dump(), start);
    // A second delete finds nothing of symroute's, and says so (exit 0).
    const again = node.symroute(["delete"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /\nNothing to delete: symroute owns nothing on this node\.\n$/);
  });
}

test("foreign rules, routes, tables and firewall objects are left alone", { skip }, (t) => {
  const node = createNode(t);
  // Another component's objects: a rule inside symroute's band, a route in the first table of its
  // range, an nft table and an iptables chain of its own.
  const foreign = [
    "rule add priority 1500 fwmark 0x4000/0x4000 lookup 77 proto static",
    "route add 10.0.0.0/8 dev eth0 table 20000 proto static",
    "route add 10.0.0.0/8 dev eth0 table 77",
  ];
  for (const [argv, input] of [
    [["ip", "-batch", "-"], `${foreign.join("\n")}\n`],
    [["nft", "-f", "-"], "table ip kube-proxy {\n chain x { type nat hook prerouting priority -100; }\n}\n"],
    [["iptables", "-t", "mangle", "-N", "KUBE-MARK"], undefined],
  ] as const) {
    const r = node.exec(argv, input);
    assert.equal(r.code, 0, `${argv.join(" ")}: ${r.stderr}`);
  }
  const start = node.dump();
  const applied = node.symroute(["apply", "-c", PUBLIC, "-o", "json"]);
  assert.equal(applied.code, 0, applied.stderr);
  const report = JSON.parse(applied.stdout) as { networks: { table: number }[]; warnings: string[] };
  assert.equal(report.networks[0]?.table, 20001, "a table something else uses is never handed out");
  assert.ok(report.warnings.some((w) => /priority 1500/.test(w)));
  assert.match(
    node.exec(["ip", "rule"]).stdout,
    /1500:\s+from all fwmark 0x4000\/0x4000 lookup 77 proto static/,
  );
  assert.equal(node.symroute(["delete"]).code, 0);
  assert.equal(node.dump(), start);
});

test("a bad config is rejected with every problem named, and nothing changes", { skip }, (t) => {
  const node = createNode(t);
  const bad = configFile(
    "bad.yaml",
    `networks:
  - name: Public
    addresses: [1.2.3.4/24]
    interface: "ext0\\nroute flush"
    gateway: 2001:db8::1
    colour: blue
`,
  );
  const start = node.dump();
  const r = node.symroute(["apply", "-c", bad]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /bad\.yaml: \d+ problems in the configuration/);
  assert.match(r.stderr, /bad\.yaml:2:\d+ networks\[0\]\.name/);
  assert.match(r.stderr, /bad\.yaml:3:\d+ networks\[0\]\.addresses\[0\]/);
  assert.match(r.stderr, /networks\[0\]\.interface/);
  assert.match(r.stderr, /networks\[0\]\.colour/);
  assert.equal(node.dump(), start);
  const json = node.symroute(["plan", "-c", bad, "-o", "json"]);
  assert.equal(json.code, 1);
  assert.equal((JSON.parse(json.stdout) as { error: { kind: string } }).error.kind, "invalid-argument");
});

test("--dry-run prints the payloads and changes nothing", { skip }, (t) => {
  const node = createNode(t);
  const start = node.dump();
  const r = node.symroute(["apply", "-c", PUBLIC, "--dry-run"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /# ip -batch -\nroute add 1\.2\.3\.0\/24 dev ext0 table 20000 proto 201 scope 253/);
  assert.match(r.stdout, /# nft -f -\ntable inet symroute \{\}\ndelete table inet symroute/);
  assert.equal(node.dump(), start);
});

test("without privileges: a clear error, exit 1, nothing changed", { skip }, (t) => {
  const node = createNode(t);
  const start = node.dump();
  const r = asNobody(node, ["apply", "-c", PUBLIC, "--state-dir", nobodysStateDir(t)]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /error \(permission\)/);
  assert.match(r.stderr, /hint: run (symroute )?as root/);
  assert.equal(node.dump(), start);
});

test("a state file the user may not read is a permission error that names it", { skip }, (t) => {
  const node = createNode(t);
  // root's state (0700, as symroute makes it), then nobody runs plan against it.
  assert.equal(node.symroute(["apply", "-c", PUBLIC]).code, 0);
  const r = asNobody(node, ["plan", "-c", PUBLIC, "--state-dir", node.stateDir]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(
    r.stderr,
    /error \(permission\): cannot read the state file .*state\.json: permission denied \(EACCES\)\n/,
  );
  assert.match(r.stderr, /hint: this user may not use .*--state-dir/);
  const json = asNobody(node, ["plan", "-c", PUBLIC, "--state-dir", node.stateDir, "-o", "json"]);
  assert.equal((JSON.parse(json.stdout) as { error: { kind: string } }).error.kind, "permission");
});

test("a missing tool is named with the package that provides it", { skip }, (t) => {
  const node = createNode(t);
  const empty = mkdtempSync(join(tmpdir(), "symroute-nopath-"));
  const ipPath = must(["sh", "-c", "command -v ip"]).trim();
  const r = run(
    [
      ipPath,
      "netns",
      "exec",
      node.name,
      process.execPath,
      CLI,
      "plan",
      "-c",
      PUBLIC,
      "--state-dir",
      node.stateDir,
    ],
    {
      env: { PATH: empty },
    },
  );
  assert.equal(r.code, 1);
  assert.match(r.stderr, /required tool "ip" is not installed/);
  assert.match(r.stderr, /apt-get install iproute2/);
});

test("two namespaces keep separate state", { skip }, (t) => {
  const a = createNode(t);
  const b = createNode(t);
  const shared = a.stateDir;
  assert.equal(a.exec([process.execPath, CLI, "apply", "-c", PUBLIC, "--state-dir", shared]).code, 0);
  assert.equal(b.exec([process.execPath, CLI, "apply", "-c", PUBLIC, "--state-dir", shared]).code, 0);
  assert.equal(a.exec([process.execPath, CLI, "delete", "--state-dir", shared]).code, 0);
  // b is still converged, and its state is intact.
  assert.equal(b.exec([process.execPath, CLI, "plan", "-c", PUBLIC, "--state-dir", shared]).code, 0);
  assert.equal(b.exec([process.execPath, CLI, "delete", "--state-dir", shared]).code, 0);
  assert.equal(must(["ip", "-n", b.name, "rule", "show", "priority", "1001"]), "");
});
