// A one-shot `apply` on a node symroute configured, whose state file is gone: the state it writes
// cannot know the node from before symroute (the sysctls it lowered), says so, and `delete` then
// refuses as without any state file; `delete --force` removes the objects and leaves the sysctls.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { createNode, e2eUnavailable, configDir, writeConfigFile, PUBLIC_NETWORK } from "../support/netns.ts";

const skip = e2eUnavailable();
const CONFIG = writeConfigFile(configDir("symroute-state-lost-"), "public.yaml", PUBLIC_NETWORK);

test(
  "apply on a configured node without its state file: baseline unknown, delete refuses unless --force",
  { skip },
  (t) => {
    const node = createNode(t);
    const rpFilterAll = (): string =>
      node.exec(["sysctl", "-n", "net.ipv4.conf.all.rp_filter"]).stdout.trim();
    const first = node.symroute(["apply", "-c", CONFIG, "-o", "json"]);
    assert.equal(first.code, 0, first.stderr);
    const stateFile = (JSON.parse(first.stdout) as { state: { file: string } }).state.file;
    assert.equal(rpFilterAll(), "0", "the apply lowered conf.all.rp_filter");
    rmSync(stateFile);

    const again = node.symroute(["apply", "-c", CONFIG]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /warning: symroute's objects are on the node but there is no state file/);
    const state = JSON.parse(readFileSync(stateFile, "utf8")) as {
      previousSysctls: Record<string, string>;
      baselineUnknown?: string[];
    };
    assert.deepEqual(state.previousSysctls, {});
    assert.deepEqual(state.baselineUnknown, ["previousSysctls"]);
    const planned = node.symroute(["plan", "-c", CONFIG]);
    assert.match(planned.stdout, /state: \S+ \(found; not known from before symroute: previousSysctls\)/);

    const during = node.dump();
    const refused = node.symroute(["delete"]);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /net\.ipv4\.conf\.all\.rp_filter=0/);
    assert.match(refused.stderr, /--force/);
    const refusedJson = node.symroute(["delete", "-o", "json"]);
    assert.equal(refusedJson.code, 1);
    const error = (JSON.parse(refusedJson.stdout) as { error: { kind: string; details: string[] } }).error;
    assert.equal(error.kind, "conflict");
    assert.ok(error.details.includes("net.ipv4.conf.all.rp_filter=0"), JSON.stringify(error));
    assert.equal(node.dump(), during, "a refused delete changes nothing");

    const forced = node.symroute(["delete", "--force"]);
    assert.equal(forced.code, 0, forced.stdout + forced.stderr);
    assert.match(forced.stdout, /warning: .*not restored: .*net\.ipv4\.conf\.all\.rp_filter=0/);
    assert.doesNotMatch(node.exec(["ip", "rule"]).stdout, /lookup 20000/);
    assert.doesNotMatch(node.exec(["nft", "list", "ruleset"]).stdout, /symroute/);
    assert.equal(rpFilterAll(), "0", "the value from before symroute is unknown: left as it is");
  },
);

test(
  "the way out without delete: the earlier state file put back is a complete record again; delete then restores the node exactly",
  { skip },
  (t) => {
    const node = createNode(t);
    const start = node.dump();
    const first = node.symroute(["apply", "-c", CONFIG, "-o", "json"]);
    assert.equal(first.code, 0, first.stderr);
    const stateFile = (JSON.parse(first.stdout) as { state: { file: string } }).state.file;
    const backup = readFileSync(stateFile, "utf8");
    rmSync(stateFile);
    const again = node.symroute(["apply", "-c", CONFIG, "-o", "json"]);
    assert.equal(again.code, 0, again.stderr);
    // The apply's report names the record it wrote.
    const written = JSON.parse(again.stdout) as { state: { found: boolean; baselineUnknown?: string[] } };
    assert.deepEqual(written.state, { file: stateFile, found: false, baselineUnknown: ["previousSysctls"] });

    writeFileSync(stateFile, backup);
    const planned = node.symroute(["plan", "-c", CONFIG, "-o", "json"]);
    assert.equal(planned.code, 0, planned.stdout + planned.stderr);
    assert.deepEqual((JSON.parse(planned.stdout) as { state: unknown }).state, {
      file: stateFile,
      found: true,
    });
    const deleted = node.symroute(["delete"]);
    assert.equal(deleted.code, 0, deleted.stdout + deleted.stderr);
    assert.equal(node.dump(), start, "every sysctl back to its value from before symroute");
  },
);
