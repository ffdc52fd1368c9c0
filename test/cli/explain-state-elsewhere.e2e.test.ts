// explain takes symroute's anti-spoofing guards from its state. Asked with another --state-dir than
// apply's (or the default, when the configuration sets stateDir), it finds no state while symroute's
// firewall is on the node: the answer then leaves the guard out (here: a spoofed packet the node
// drops is explained as delivered), and a note must say why and what to pass.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CLI,
  configDir,
  createNode,
  e2eUnavailable,
  PUBLIC_NETWORK,
  run,
  writeConfigFile,
} from "../support/netns.ts";

const skip = e2eUnavailable();
const CONFIG = writeConfigFile(configDir("symroute-explain-elsewhere-"), "public.yaml", PUBLIC_NETWORK);
const SPOOFED = ["explain", "--from", "10.112.0.5", "--to", "192.168.1.10", "--iif", "ext0", "-o", "json"];

interface Answer {
  result: string;
  guard?: { result: string };
  notes: string[];
}

test(
  "explain without apply's state on a node with symroute's firewall: a note names the state it looked for",
  { skip },
  (t) => {
    const node = createNode(t);
    assert.equal(node.symroute(["apply", "-c", CONFIG]).code, 0);
    const other = mkdtempSync(join(tmpdir(), "symroute-other-state-"));
    t.after(() => rmSync(other, { recursive: true, force: true }));
    /** symroute in the node with a state directory apply did not use. */
    const withOtherState = (args: readonly string[]) =>
      run(["ip", "netns", "exec", node.name, process.execPath, CLI, ...args, "--state-dir", other]);

    const elsewhere = withOtherState(SPOOFED);
    assert.equal(elsewhere.code, 0, elsewhere.stderr);
    const blind = JSON.parse(elsewhere.stdout) as Answer;
    assert.equal(blind.guard ?? null, null);
    assert.ok(
      blind.notes.some(
        (n) =>
          n.startsWith("symroute's firewall (nftables) is on this node, but there is no state file at ") &&
          n.includes(`${other}/netns-`) &&
          n.includes("give --state-dir the directory apply used"),
      ),
      JSON.stringify(blind.notes),
    );

    // With apply's state: the guard decides, and no such note.
    const right = node.symroute(SPOOFED);
    assert.equal(right.code, 0, right.stderr);
    const seen = JSON.parse(right.stdout) as Answer;
    assert.equal(seen.guard?.result, "drop");
    assert.equal(seen.result, "rejected");
    assert.ok(!seen.notes.some((n) => n.includes("no state file")), JSON.stringify(seen.notes));

    // A snapshot taken that way warns on stderr; with apply's state it holds the guards, silently.
    const snapshot = withOtherState(["snapshot"]);
    assert.equal(snapshot.code, 0, snapshot.stderr);
    assert.match(
      snapshot.stderr,
      /^warning: symroute's firewall \(nftables\) is on this node, but there is no state file at /,
    );
    assert.equal((JSON.parse(snapshot.stdout) as { guards?: unknown[] }).guards, undefined);
    const complete = node.symroute(["snapshot"]);
    assert.equal(complete.stderr, "");
    assert.equal((JSON.parse(complete.stdout) as { guards?: unknown[] }).guards?.length, 1);

    // A locally generated packet meets no guard: no note either.
    const local = withOtherState(["explain", "--to", "192.168.1.1", "-o", "json"]);
    assert.deepEqual((JSON.parse(local.stdout) as Answer).notes, []);
  },
);
