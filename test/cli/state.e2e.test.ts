// The state is explicit (issue 17 item 3): plan, apply and delete name the state file they use, and
// a delete that finds symroute's objects but not their state refuses, naming the sysctls it could
// not put back and where it looked, unless --force.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CLI,
  createNode,
  e2eUnavailable,
  type Netns,
  configDir,
  writeConfigFile,
  PUBLIC_NETWORK,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-state-");
const CONFIG = writeConfigFile(dir, "public.yaml", PUBLIC_NETWORK);

/** The CLI with an explicit state directory (node.symroute appends the test's own). */
function symroute(node: Netns, stateDir: string, args: readonly string[]) {
  return node.exec([process.execPath, CLI, ...args, "--state-dir", stateDir]);
}

const rpFilterAll = (node: Netns): string =>
  node.exec(["sysctl", "-n", "net.ipv4.conf.all.rp_filter"]).stdout.trim();

test(
  "plan, apply and delete name their state; a delete with another state refuses unless --force",
  { skip },
  (t) => {
    const node = createNode(t);
    const other = mkdtempSync(join(tmpdir(), "symroute-other-"));
    t.after(() => rmSync(other, { recursive: true, force: true }));
    const start = node.dump();

    const planned = symroute(node, node.stateDir, ["plan", "-c", CONFIG, "-o", "json"]);
    assert.equal(planned.code, 2, planned.stderr);
    const plan = JSON.parse(planned.stdout) as { state: { file: string; found: boolean } };
    assert.ok(plan.state.file.startsWith(`${node.stateDir}/netns-`), plan.state.file);
    assert.match(plan.state.file, /\/state\.json$/);
    assert.equal(plan.state.found, false);

    const applied = symroute(node, node.stateDir, ["apply", "-c", CONFIG]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, new RegExp(`state: ${node.stateDir}/netns-\\S+/state\\.json`));
    assert.equal(rpFilterAll(node), "0", "the apply lowered conf.all.rp_filter");
    const during = node.dump();
    const again = JSON.parse(symroute(node, node.stateDir, ["plan", "-c", CONFIG, "-o", "json"]).stdout) as {
      state: { file: string; found: boolean };
    };
    assert.deepEqual(again.state, { file: plan.state.file, found: true });

    // Another state directory: symroute's objects are there, their state is not.
    const refused = symroute(node, other, ["delete"]);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(refused.stderr, new RegExp(`no state file at ${other}/netns-\\S+/state\\.json`));
    assert.match(refused.stderr, /net\.ipv4\.conf\.all\.rp_filter=0/);
    assert.match(refused.stderr, /--force/);
    assert.equal(node.dump(), during, "a refused delete changes nothing");
    const refusedJson = symroute(node, other, ["delete", "-o", "json"]);
    assert.equal(refusedJson.code, 1);
    const error = (JSON.parse(refusedJson.stdout) as { error: { kind: string; details: string[] } }).error;
    assert.equal(error.kind, "conflict");
    assert.ok(error.details.includes("net.ipv4.conf.all.rp_filter=0"), JSON.stringify(error));

    // The state the apply used: everything back, byte for byte.
    const deleted = symroute(node, node.stateDir, ["delete", "-o", "json"]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual((JSON.parse(deleted.stdout) as { state: unknown }).state, {
      file: plan.state.file,
      found: true,
    });
    assert.equal(node.dump(), start);
    assert.equal(rpFilterAll(node), "1");
  },
);

test(
  "delete --force without the state removes symroute's objects and says which sysctls stay",
  { skip },
  (t) => {
    const node = createNode(t);
    const other = mkdtempSync(join(tmpdir(), "symroute-other-"));
    t.after(() => rmSync(other, { recursive: true, force: true }));
    assert.equal(symroute(node, node.stateDir, ["apply", "-c", CONFIG]).code, 0);
    const forced = symroute(node, other, ["delete", "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(
      forced.stdout,
      /warning: no state file at .*sysctls left as they are, not restored: .*net\.ipv4\.conf\.all\.rp_filter=0/,
    );
    assert.doesNotMatch(node.exec(["ip", "rule"]).stdout, /lookup 20000/);
    assert.doesNotMatch(node.exec(["nft", "list", "ruleset"]).stdout, /symroute/);
    assert.equal(rpFilterAll(node), "0", "forced: the value from before symroute is unknown, so it stays");
    // Nothing of symroute's left: a second delete without state has nothing to refuse.
    const second = symroute(node, other, ["delete"]);
    assert.equal(second.code, 0, second.stderr);
  },
);

test(
  "without the state, plan and apply keep the anti-spoofing guard the node has (rp_filter stays lowered)",
  { skip },
  (t) => {
    const node = createNode(t);
    const other = mkdtempSync(join(tmpdir(), "symroute-other-"));
    t.after(() => rmSync(other, { recursive: true, force: true }));
    assert.equal(symroute(node, node.stateDir, ["apply", "-c", CONFIG]).code, 0);
    const guard = (): string[] =>
      node
        .exec(["nft", "list", "table", "netdev", "symroute"])
        .stdout.split("\n")
        .filter((l) => /fib saddr \. iif oif missing drop/.test(l))
        .map((l) => l.trim());
    const applied = guard();
    assert.equal(applied.length, 1, "the apply checks sources on ext0 in the firewall (rp_filter lowered)");
    assert.equal(rpFilterAll(node), "0");
    // Another state directory (a lost state file): symroute's own lowered rp_filter must not read as
    // the node's original, or the guard would go while rp_filter stays off.
    const planned = symroute(node, other, ["plan", "-c", CONFIG, "-o", "json"]);
    assert.equal(planned.code, 0, planned.stdout + planned.stderr);
    const plan = JSON.parse(planned.stdout) as { guards: { iif: string; mode: string }[]; inSync: boolean };
    assert.deepEqual(
      plan.guards.map((g) => `${g.iif} ${g.mode}`),
      ["ext0 strict"],
    );
    const reapplied = symroute(node, other, ["apply", "-c", CONFIG]);
    assert.equal(reapplied.code, 0, reapplied.stderr);
    assert.deepEqual(guard(), applied, "the guard is still in the kernel");
    // And again with the state that apply wrote (it records no earlier rp_filter): still kept.
    assert.equal(symroute(node, other, ["plan", "-c", CONFIG]).code, 0);
  },
);
