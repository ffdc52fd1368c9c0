// `agent --cleanup-on-exit` and its state file (issue 17 item 3): with objects symroute owns on the
// node but no state file, the clean-up is refused as `symroute delete` refuses it (nothing removed,
// the state file and the sysctls it cannot restore named, an error for a non-zero exit), and the
// agent still closes its endpoints and frees the namespace's lock; with nothing owned and no state
// there is nothing to do, and the stop succeeds. A state file the agent wrote again after its loss
// (baseline unknown) is refused the same way.

import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, describe, it } from "node:test";
import { startAgent } from "../../src/agent/agent.ts";
import { createLogger } from "../../src/agent/logger.ts";
import { createMetrics } from "../../src/agent/metrics.ts";
import { parseConfigText } from "../../src/config/index.ts";
import { createEngine } from "../../src/engine/engine.ts";
import { SymrouteError } from "../../src/model/errors.ts";
import { articleNode, FakeKernel } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { FakeClock } from "./support/fake-clock.ts";

const dir = mkdtempSync(join(tmpdir(), "symroute-cleanup-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const TEXT =
  "networks:\n  - name: public\n    addresses: [1.2.3.0/24]\n    interface: ext0\n    gateway: 1.2.3.1\n";
const configFile = join(dir, "config.yaml");
writeFileSync(configFile, TEXT);

let lockCounter = 0;

async function converged(kernel: FakeKernel, store: MemoryStore, lockName: string) {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      lines.push(
        ...chunk
          .toString("utf8")
          .split("\n")
          .filter((l) => l !== ""),
      );
      done();
    },
  });
  const clock = new FakeClock();
  const agent = await startAgent({
    engine: createEngine({ kernel, store }),
    logger: createLogger("info", sink),
    clock,
    metrics: createMetrics(),
    configFile,
    kernelEvents: false,
    resyncMs: 60_000,
    lockName,
  });
  clock.idle = async () => {
    for (let i = 0; i < 5_000 && agent.loopState().running; i++)
      await new Promise<void>((resolve) => setTimeout(resolve, 1));
  };
  await clock.advance(0);
  assert.deepEqual(agent.readiness(), { ready: true, reason: "converged" });
  return { agent, lines };
}

const ownedRules = (kernel: FakeKernel) =>
  kernel.state.rules.filter((r) => r.priority >= 1000 && r.priority < 2000);

describe("agent --cleanup-on-exit", () => {
  it("objects owned but no state file: refused and logged, nothing removed, the lock freed", async () => {
    const kernel = new FakeKernel(articleNode());
    const store = new MemoryStore();
    const lockName = `symroute-cleanup-${process.pid}-${++lockCounter}`;
    const { agent, lines } = await converged(kernel, store, lockName);
    assert.ok(ownedRules(kernel).length > 0);
    await store.remove();

    await assert.rejects(
      agent.stop({ cleanup: true }),
      (error: unknown) =>
        error instanceof SymrouteError &&
        error.kind === "conflict" &&
        /symroute owns but no state file at .*: the values these sysctls had before symroute cannot be restored/.test(
          error.message,
        ) &&
        error.details.some((d) => /rp_filter/.test(d)),
    );
    assert.ok(ownedRules(kernel).length > 0, "nothing was removed");
    const logged = lines.map((l) => JSON.parse(l) as { msg: string; level: string; details?: string[] });
    const refusal = logged.find((l) => l.msg === "--cleanup-on-exit removed nothing");
    assert.ok(refusal !== undefined && refusal.level === "error", lines.join("\n"));
    assert.ok(refusal.details?.some((d) => /rp_filter/.test(d)));

    // The namespace's lock is free: another agent starts; `delete --force` is the way out.
    const again = await converged(kernel, store, lockName);
    await again.agent.stop();
    await createEngine({ kernel, store: new MemoryStore() }).remove(parse(), { force: true });
    assert.deepEqual(ownedRules(kernel), []);
  });

  it("a state file rewritten after its loss (baseline unknown): refused the same way", async () => {
    const kernel = new FakeKernel(articleNode());
    const store = new MemoryStore();
    const lockName = `symroute-cleanup-${process.pid}-${++lockCounter}`;
    await (await converged(kernel, store, lockName)).agent.stop();
    await store.remove();
    // The next agent's first reconcile finds the node in sync and writes the state again.
    const { agent, lines } = await converged(kernel, store, lockName);
    assert.deepEqual(store.state?.baselineUnknown, ["previousSysctls"]);
    await assert.rejects(
      agent.stop({ cleanup: true }),
      (error: unknown) =>
        error instanceof SymrouteError &&
        error.kind === "conflict" &&
        /was written on a node symroute had already changed/.test(error.message) &&
        error.details.includes("net.ipv4.conf.all.rp_filter=0"),
    );
    assert.ok(ownedRules(kernel).length > 0, "nothing was removed");
    assert.ok(
      lines.some((l) => (JSON.parse(l) as { msg: string }).msg === "--cleanup-on-exit removed nothing"),
    );
  });

  it("nothing owned and no state file: nothing to remove, the stop succeeds", async () => {
    const kernel = new FakeKernel(articleNode());
    const store = new MemoryStore();
    const { agent, lines } = await converged(
      kernel,
      store,
      `symroute-cleanup-${process.pid}-${++lockCounter}`,
    );
    // The objects go (as `delete --force` takes them), and the state with them.
    await createEngine({ kernel, store: new MemoryStore() }).remove(parse(), { force: true });
    await store.remove();
    await agent.stop({ cleanup: true });
    assert.ok(
      lines.some((l) => (JSON.parse(l) as { msg: string }).msg === "nothing to remove"),
      lines.join("\n"),
    );
  });
});

function parse() {
  const r = parseConfigText(TEXT);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}
