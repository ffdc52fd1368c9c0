// Concurrency (issue 7, item 5): two runs at once in one network namespace. One waits for the
// other (the namespace's lock, --lock-wait) or refuses with a "busy" error; afterwards the node
// holds exactly one consistent state: `plan` in sync, no duplicate rules, routes or firewall rules.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { setTimeout as delay } from "node:timers/promises";
import { APPLY_LOCK_NAME } from "../../src/adapters/state-file.ts";
import {
  assertSameDump,
  canonicalDump,
  CLI,
  createNamespaceNode,
  e2eUnavailable,
  type Netns,
  writeConfigFile,
} from "../support/netns.ts";
import { duplicateObjects, manyNetworksConfig } from "./support/node.ts";

const skip = e2eUnavailable();

interface Finished {
  readonly code: number | null;
  readonly stderr: string;
}

/** Starts symroute without waiting for it. */
function start(
  node: Netns,
  args: readonly string[],
): { child: ReturnType<typeof spawn>; done: Promise<Finished> } {
  const child = spawn(
    "ip",
    ["netns", "exec", node.name, process.execPath, CLI, ...args, "--state-dir", node.stateDir],
    {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, NO_COLOR: "1" },
    },
  );
  let stderr = "";
  child.stderr?.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
  const done = new Promise<Finished>((resolve) => child.on("close", (code) => resolve({ code, stderr })));
  return { child, done };
}

/** Exit 0, or exit 1 with the "busy" error: the two outcomes a second run may have. */
function waitedOrRefused(r: Finished, what: string): "waited" | "refused" {
  if (r.code === 0) return "waited";
  assert.equal(r.code, 1, `${what}: ${r.stderr}`);
  assert.match(
    r.stderr,
    /error \(busy\): another symroute \(pid \d+\) is changing this network namespace/,
    what,
  );
  return "refused";
}

function assertConsistent(node: Netns, config: string, what: string): void {
  const plan = node.symroute(["plan", "-c", config]);
  assert.equal(plan.code, 0, `${what}: plan is not in sync:\n${plan.stdout}${plan.stderr}`);
  assert.deepEqual(duplicateObjects(node), [], what);
}

test(
  "a held lock: apply refuses with a busy error after --lock-wait, and waits while it is held",
  { skip },
  async (t) => {
    const node = createNamespaceNode({ prefix: "sr-conc" });
    t.after(() => node.destroy());
    const config = writeConfigFile(node.stateDir, "ten.yaml", manyNetworksConfig(10));
    // Another holder of this namespace's lock (an abstract Unix socket, scoped to the namespace),
    // answering like symroute does; it prints "ready" once it holds the lock.
    const holderCode =
      "const s = require('node:net').createServer((c) => c.end(JSON.stringify({ pid: process.pid }) + '\\n'));" +
      `s.listen({ path: '\\0${APPLY_LOCK_NAME}' }, () => console.log('ready'));`;
    const holder = spawn("ip", ["netns", "exec", node.name, process.execPath, "-e", holderCode], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    t.after(() => holder.kill("SIGKILL"));
    await new Promise<void>((resolve) => holder.stdout?.once("data", () => resolve()));
    const original = node.dump();

    const refused = node.symroute(["apply", "-c", config, "--lock-wait", "1"]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      new RegExp(
        `error \\(busy\\): another symroute \\(pid ${holder.pid}\\) is changing this network namespace`,
      ),
    );
    assertSameDump(original, node.dump(), "a refused apply changed the node");

    const waiting = start(node, ["apply", "-c", config, "--lock-wait", "60"]);
    // Whatever the timing, it cannot finish while the lock is held: check a few times, then release.
    for (let i = 0; i < 10; i++) {
      await delay(100);
      assert.equal(waiting.child.exitCode, null, "apply finished while another run held the lock");
    }
    assertSameDump(original, node.dump(), "a waiting apply changed the node");
    holder.kill("SIGKILL"); // the kernel releases the lock with the process, as after a crash
    const finished = await waiting.done;
    assert.equal(finished.code, 0, finished.stderr);
    assertConsistent(node, config, "after the waiting apply");
  },
);

test(
  "two applies of the same config at once: one waits or refuses, and one consistent state results",
  { skip },
  async (t) => {
    const node = createNamespaceNode({ prefix: "sr-conc" });
    t.after(() => node.destroy());
    const config = writeConfigFile(node.stateDir, "many.yaml", manyNetworksConfig(100));
    const original = node.dump();
    for (let round = 0; round < 3; round++) {
      const a = start(node, ["apply", "-c", config]);
      const b = start(node, ["apply", "-c", config]);
      const [ra, rb] = await Promise.all([a.done, b.done]);
      const outcomes = [
        waitedOrRefused(ra, `round ${round} first`),
        waitedOrRefused(rb, `round ${round} second`),
      ];
      t.diagnostic(`round ${round}: ${outcomes.join(", ")}`);
      assert.ok(outcomes.includes("waited"), `round ${round}: both refused`);
      assertConsistent(node, config, `round ${round}`);
      const deleted = node.symroute(["delete"]);
      assert.equal(deleted.code, 0, deleted.stderr);
      assertSameDump(original, node.dump(), `round ${round}: delete did not restore the node`);
    }
  },
);

test("two different configs at once: the node ends in exactly one of them", { skip }, async (t) => {
  const node = createNamespaceNode({ prefix: "sr-conc" });
  t.after(() => node.destroy());
  const configA = writeConfigFile(node.stateDir, "a.yaml", manyNetworksConfig(100));
  const configB = writeConfigFile(node.stateDir, "b.yaml", manyNetworksConfig(60, "iptables"));
  const original = node.dump();
  // What each config alone produces, to compare the race's result with.
  const alone = (config: string): string => {
    assert.equal(node.symroute(["apply", "-c", config]).code, 0);
    const dump = canonicalDump(node.dump());
    assert.equal(node.symroute(["delete"]).code, 0);
    return dump;
  };
  const onlyA = alone(configA);
  const onlyB = alone(configB);
  for (let round = 0; round < 3; round++) {
    const a = start(node, ["apply", "-c", configA]);
    const b = start(node, ["apply", "-c", configB]);
    const [ra, rb] = await Promise.all([a.done, b.done]);
    const outcomes = [waitedOrRefused(ra, `round ${round} A`), waitedOrRefused(rb, `round ${round} B`)];
    const now = canonicalDump(node.dump());
    const winner = now === onlyA ? configA : now === onlyB ? configB : undefined;
    assert.ok(winner !== undefined, `round ${round}: the node is neither A nor B`);
    t.diagnostic(`round ${round}: ${outcomes.join(", ")}; the node holds ${winner === configA ? "A" : "B"}`);
    assertConsistent(node, winner, `round ${round}`);
    assert.equal(node.symroute(["delete"]).code, 0);
    assertSameDump(original, node.dump(), `round ${round}: delete did not restore the node`);
  }
});
