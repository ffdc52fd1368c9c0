// A network with method route whose interface later gets an address in the pool: the kernel
// appends the address's connected route beside symroute's (measured, Linux 6.18: both listed, one
// key, symroute's first). The diff took the kernel's for symroute's, reported a conflict whose two
// routes read the same, and apply exited 4 on every run (the agent never converged), although the
// node routes the pool as wanted. Now symroute's own route is the one compared: apply converges,
// plan is in sync, and delete takes only symroute's route.

import { test } from "node:test";
import assert from "node:assert/strict";
import { configDir, createNode, e2eUnavailable, must, writeConfigFile } from "../support/netns.ts";

const skip = e2eUnavailable();
const CONFIG = writeConfigFile(
  configDir("symroute-connected-"),
  "route.yaml",
  `networks:
  - { name: services, addresses: [10.9.8.0/24], interface: ext0, method: route }
`,
);

interface ListedRoute {
  readonly dst?: string;
  readonly dev?: string;
  readonly protocol?: string;
}

test("method route: an address in the pool added to its interface leaves the node in sync", { skip }, (t) => {
  const node = createNode(t);
  const start = node.dump();
  const first = node.symroute(["apply", "-c", CONFIG]);
  assert.equal(first.code, 0, first.stdout + first.stderr);
  must(["ip", "-n", node.name, "addr", "add", "10.9.8.5/24", "dev", "ext0"]);
  const routes = (): string[] =>
    (JSON.parse(must(["ip", "-n", node.name, "-j", "-N", "route", "show", "10.9.8.0/24"])) as ListedRoute[])
      .map((r) => `${r.dst} ${r.dev} ${r.protocol}`)
      .sort();
  assert.deepEqual(routes(), ["10.9.8.0/24 ext0 2", "10.9.8.0/24 ext0 201"]);

  const applied = node.symroute(["apply", "-c", CONFIG]);
  assert.equal(applied.code, 0, applied.stdout + applied.stderr);
  assert.doesNotMatch(applied.stdout, /conflict/);
  const plan = node.symroute(["plan", "-c", CONFIG]);
  assert.equal(plan.code, 0, plan.stdout + plan.stderr);
  assert.deepEqual(routes(), ["10.9.8.0/24 ext0 2", "10.9.8.0/24 ext0 201"]);

  const deleted = node.symroute(["delete"]);
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.deepEqual(routes(), ["10.9.8.0/24 ext0 2"], "the address's own route stays");
  must(["ip", "-n", node.name, "addr", "del", "10.9.8.5/24", "dev", "ext0"]);
  assert.equal(node.dump(), start);
});
