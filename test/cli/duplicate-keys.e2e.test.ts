// A configuration with a key written twice is refused by every reader, with FILE:LINE:COL: plan,
// apply and the agent, for JSON and for YAML. Before issue 14 the CLI's JSON fast path (and its
// hand-written YAML reader) kept the last "networks" and applied the file the agent refused.

import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readConfigFile } from "../../src/agent/desired-config.ts";
import { createNode, e2eUnavailable } from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = mkdtempSync(join(tmpdir(), "symroute-dup-"));
chmodSync(dir, 0o755);

const NETWORK = '{"name": "public", "addresses": ["1.2.3.0/24"], "interface": "ext0"}';
const FILES = {
  "dup.json": `{"networks": [${NETWORK}],\n "networks": []}\n`,
  "dup.yaml": `networks:\n  - {name: public, addresses: [1.2.3.0/24], interface: ext0}\nfirewall: auto\nnetworks: []\n`,
} as const;
/** Where each file writes its second key. */
const WHERE = { "dup.json": "2:2", "dup.yaml": "4:1" } as const;

function file(name: keyof typeof FILES): string {
  const path = join(dir, name);
  writeFileSync(path, FILES[name]);
  chmodSync(path, 0o644);
  return path;
}

for (const name of Object.keys(FILES) as (keyof typeof FILES)[]) {
  const expected = (path: string) => `${path}:${WHERE[name]}: YAML: duplicate key "networks"`;

  test(`${name}: plan and apply refuse the duplicate key and change nothing`, { skip }, (t) => {
    const node = createNode(t);
    const path = file(name);
    const rulesBefore = node.exec(["ip", "-j", "rule"]).stdout;
    for (const command of ["plan", "apply"]) {
      const r = node.symroute([command, "-c", path]);
      assert.equal(r.code, 1, `${command}: ${r.stdout}${r.stderr}`);
      assert.ok(r.stderr.includes(expected(path)), `${command}: ${r.stderr}`);
    }
    assert.equal(node.exec(["ip", "-j", "rule"]).stdout, rulesBefore);
  });

  test(
    `${name}: the agent refuses it at start, and the agent's file reader refuses it too`,
    { skip },
    (t) => {
      const node = createNode(t);
      const path = file(name);
      const r = node.symroute(["agent", "-c", path, "--listen", "127.0.0.1:0"]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.ok(r.stderr.includes(expected(path)), r.stderr);
      // What a running agent does when the file changes to this text.
      const reread = readConfigFile(FILES[name], path);
      assert.ok(!reread.ok);
      assert.ok(
        reread.problems.some((p) => p.startsWith(expected(path))),
        reread.problems.join("\n"),
      );
    },
  );
}
