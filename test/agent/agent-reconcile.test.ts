// The agent's reconcile against a scripted engine and a fake clock: drift repairs counted, conflicts
// reported but not retried in a loop, errors backed off, an invalid file refused at start.

import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, describe, it } from "node:test";
import { startAgent, type Agent } from "../../src/agent/agent.ts";
import { createLogger } from "../../src/agent/logger.ts";
import { createMetrics, type AgentMetrics } from "../../src/agent/metrics.ts";
import type { ApplyReport, Engine } from "../../src/engine/engine.ts";
import type { Config } from "../../src/config/schema.ts";
import { SymrouteError } from "../../src/model/errors.ts";
import { FakeClock } from "./support/fake-clock.ts";

const dir = mkdtempSync(join(tmpdir(), "symroute-agent-unit-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const configFile = join(dir, "config.yaml");
writeFileSync(
  configFile,
  "podCIDRs: [10.112.0.0/12]\nnetworks:\n  - name: public\n    addresses: [1.2.3.0/24]\n    interface: ext0\n    gateway: 1.2.3.1\n",
);

type Step = { changes?: number; conflicts?: number } | Error;

function scriptedEngine(steps: Step[]): Engine & { calls: Config[] } {
  const calls: Config[] = [];
  return {
    calls,
    plan: async () => {
      throw new Error("not used");
    },
    apply: async (config) => {
      calls.push(config);
      const step = steps.shift() ?? {};
      if (step instanceof Error) throw step;
      return {
        networks: [],
        changes: Array.from({ length: step.changes ?? 0 }, () => ({ kind: "rule" })),
        conflicts: Array.from({ length: step.conflicts ?? 0 }, (_, i) => ({
          object: `rule ${1000 + i}`,
          reason: "foreign",
        })),
        warnings: [],
        warningDetails: [],
        inSync: (step.changes ?? 0) === 0,
        firewall: undefined,
        kubeProxyMode: undefined,
        ownedObjects: 3,
        payloads: {},
        applied: (step.changes ?? 0) > 0,
      } as unknown as ApplyReport;
    },
    remove: async () => ({}) as ApplyReport,
  };
}

const quiet = () => createLogger("error", new Writable({ write: (_c, _e, done) => done() }));
const value = async (metrics: AgentMetrics, name: string): Promise<number> => {
  const text = await metrics.registry.getSingleMetricAsString(name);
  return text
    .split("\n")
    .filter((l) => l.startsWith(name))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
};

let lockCounter = 0;
/** A reconcile reads the config file (real I/O): wait for it, bounded, before moving the clock on. */
async function whileRunning(agent: Agent): Promise<void> {
  for (let i = 0; i < 5_000 && agent.loopState().running; i++) {
    await new Promise<void>((resolve) => setTimeout(resolve, 1));
  }
}
async function agentWith(engine: Engine) {
  const clock = new FakeClock();
  const metrics = createMetrics();
  const agent = await startAgent({
    engine,
    logger: quiet(),
    clock,
    metrics,
    configFile,
    kernelEvents: false,
    resyncMs: 60_000,
    lockName: `symroute-agent-reconcile-${process.pid}-${++lockCounter}`,
  });
  clock.idle = () => whileRunning(agent);
  return { agent, clock, metrics };
}

describe("agent reconcile", () => {
  it("counts a change without a config change as a drift repair, not the first apply", async () => {
    const engine = scriptedEngine([{ changes: 4 }, {}, { changes: 1 }]);
    const { agent, clock, metrics } = await agentWith(engine);
    try {
      await clock.advance(0);
      assert.equal(engine.calls.length, 1);
      assert.equal(await value(metrics, "symroute_drift_repairs_total"), 0, "the first apply is not drift");
      assert.deepEqual(agent.readiness(), { ready: true, reason: "converged" });
      await clock.advance(60_000);
      await clock.advance(60_000);
      assert.equal(engine.calls.length, 3);
      assert.equal(await value(metrics, "symroute_drift_repairs_total"), 1);
      assert.equal(await value(metrics, "symroute_changes_applied_total"), 5);
      assert.equal(await value(metrics, "symroute_owned_objects"), 3);
    } finally {
      await agent.stop();
    }
  });

  it("reads the state file once more after each reconcile, after the engine is done with it", async () => {
    const engine = scriptedEngine([{ changes: 4 }, {}]);
    const clock = new FakeClock();
    const order: string[] = [];
    const agent = await startAgent({
      engine: {
        ...engine,
        apply: async (config, options) => {
          order.push("apply");
          return engine.apply(config, options);
        },
      },
      logger: quiet(),
      clock,
      metrics: createMetrics(),
      configFile,
      kernelEvents: false,
      resyncMs: 60_000,
      lockName: `symroute-agent-reconcile-${process.pid}-${++lockCounter}`,
      stateFile: {
        read: async () => {
          order.push("state read");
          throw new Error("a failed read is only a cache miss");
        },
      },
    });
    clock.idle = () => whileRunning(agent);
    try {
      await clock.advance(0);
      await new Promise((resolve) => setImmediate(resolve));
      await clock.advance(60_000);
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(order, ["apply", "state read", "apply", "state read"]);
      assert.deepEqual(agent.readiness(), { ready: true, reason: "converged" });
    } finally {
      await agent.stop();
    }
  });

  it("reports conflicts without retrying in a loop", async () => {
    const engine = scriptedEngine([{ conflicts: 2 }, { conflicts: 2 }]);
    const { agent, clock, metrics } = await agentWith(engine);
    try {
      await clock.advance(59_999);
      assert.equal(engine.calls.length, 1, "no retries until the resync");
      assert.equal(await value(metrics, "symroute_conflicts"), 2);
      // Readiness says the node is not what the configuration asks, and why.
      assert.equal(agent.readiness().ready, false);
      assert.match(agent.readiness().reason, /^converged except 2 conflicts with foreign objects: /);
      assert.equal(await value(metrics, "symroute_converged"), 0);
    } finally {
      await agent.stop();
    }
  });

  it("backs off after kernel errors and stops retrying a permanent one", async () => {
    const kernel = new SymrouteError("kernel", "ip -batch failed");
    const engine = scriptedEngine([kernel, kernel, kernel, {}]);
    const { agent, clock, metrics } = await agentWith(engine);
    try {
      await clock.advance(0);
      assert.equal(agent.readiness().ready, false);
      assert.match(agent.readiness().reason, /kernel: ip -batch failed/);
      await clock.advance(250 + 500 + 1000);
      assert.equal(engine.calls.length, 4);
      assert.equal(agent.readiness().ready, true);
      assert.equal(await value(metrics, "symroute_reconcile_errors_total"), 3);
    } finally {
      await agent.stop();
    }
    const permanent = scriptedEngine([new SymrouteError("permission", "Operation not permitted")]);
    const second = await agentWith(permanent);
    try {
      await second.clock.advance(30_000);
      assert.equal(permanent.calls.length, 1);
    } finally {
      await second.agent.stop();
    }
  });

  it("refuses to start twice in one namespace with the same lock", async () => {
    const engine = scriptedEngine([]);
    const clock = new FakeClock();
    const options = {
      engine,
      logger: quiet(),
      clock,
      metrics: createMetrics(),
      configFile,
      kernelEvents: false,
      lockName: `symroute-agent-twice-${process.pid}`,
    };
    const first = await startAgent(options);
    try {
      await assert.rejects(startAgent({ ...options, metrics: createMetrics() }), /another symroute agent/);
    } finally {
      await first.stop();
    }
  });
});
