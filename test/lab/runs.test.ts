// Which lab runs a plain `lab down` removes: the one no live process owns, never one of several.

import { test } from "node:test";
import assert from "node:assert/strict";
import { defaultDown, labRunsOf } from "../../src/lab/runs.ts";

const HOSTS = ["client", "node", "router"];
const run = (prefix: string): string[] => HOSTS.map((h) => `${prefix}${h}`);

test("namespaces are grouped by the run that made them", () => {
  const runs = labRunsOf([
    ...run("srlab-100-1-"),
    ...run("srlab-100-2-"),
    "srlab-hand",
    ...run("srlab-7-10-"),
  ]);
  assert.deepEqual(
    runs.map((r) => [r.prefix, r.pid, r.namespaces.length]),
    [
      ["srlab-100-1-", 100, 3],
      ["srlab-100-2-", 100, 3],
      ["srlab-hand", undefined, 1],
      ["srlab-7-10-", 7, 3],
    ],
  );
});

test("one idle run: removed, a running process's run left", () => {
  const runs = labRunsOf([...run("srlab-100-1-"), ...run("srlab-200-1-")]);
  const choice = defaultDown(runs, (pid) => pid === 200);
  assert.equal(choice.kind, "remove");
  assert.equal(choice.kind === "remove" && choice.run.prefix, "srlab-100-1-");
  assert.deepEqual(
    choice.inUse.map((r) => r.prefix),
    ["srlab-200-1-"],
  );
});

test("two idle runs (two `lab up`s): neither is chosen", () => {
  const choice = defaultDown(labRunsOf([...run("srlab-100-1-"), ...run("srlab-300-1-")]), () => false);
  assert.equal(choice.kind, "several");
  assert.deepEqual(choice.kind === "several" && choice.idle.map((r) => r.prefix), [
    "srlab-100-1-",
    "srlab-300-1-",
  ]);
});

test("only runs of running processes, or none at all: nothing to remove", () => {
  assert.equal(defaultDown(labRunsOf(run("srlab-200-1-")), () => true).kind, "nothing");
  assert.deepEqual(
    defaultDown([], () => false),
    { kind: "nothing", inUse: [] },
  );
});

test("a name not made by a lab run is a run of its own, owned by no process", () => {
  const choice = defaultDown(labRunsOf(["srlab-hand"]), () => true);
  assert.equal(choice.kind === "remove" && choice.run.prefix, "srlab-hand");
});
