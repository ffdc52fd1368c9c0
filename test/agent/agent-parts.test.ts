import { strict as assert } from "node:assert";
import { request } from "node:http";
import { describe, it } from "node:test";
import { parseDuration } from "../../src/agent/duration.ts";
import { isLoopback, parseListen, startHttpServer } from "../../src/agent/http.ts";
import { acquireAgentLock } from "../../src/agent/lock.ts";
import { createMetrics, METRIC_NAMES } from "../../src/agent/metrics.ts";
import { isSymrouteError } from "../../src/model/errors.ts";

function call(port: number, method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path }, (res) => {
      let body = "";
      res.on("data", (b: Buffer) => (body += b.toString("utf8")));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("agent command-line values", () => {
  it("parses --listen, refusing what is not HOST:PORT", () => {
    assert.deepEqual(parseListen("127.0.0.1:9473"), { host: "127.0.0.1", port: 9473 });
    assert.deepEqual(parseListen("[::1]:0"), { host: "::1", port: 0 });
    for (const bad of [":9473", "127.0.0.1", "127.0.0.1:99999", "a:b:c", ""]) {
      assert.throws(
        () => parseListen(bad),
        (e: unknown) => isSymrouteError(e) && e.kind === "invalid-argument",
        bad,
      );
    }
    assert.equal(isLoopback("127.0.0.1"), true);
    assert.equal(isLoopback("::1"), true);
    assert.equal(isLoopback("0.0.0.0"), false);
    assert.equal(isLoopback("192.0.2.1"), false);
  });

  it("parses durations", () => {
    assert.equal(parseDuration("250ms", "--x"), 250);
    assert.equal(parseDuration("30s", "--x"), 30_000);
    assert.equal(parseDuration("5m", "--x"), 300_000);
    assert.equal(parseDuration("60", "--x"), 60_000);
    assert.equal(parseDuration("0", "--x"), 0);
    assert.throws(
      () => parseDuration("soon", "--resync-interval"),
      /--resync-interval "soon" is not a duration/,
    );
  });
});

describe("metrics", () => {
  it("exports the documented names on a registry of its own", async () => {
    const metrics = createMetrics();
    metrics.reconciles.inc({ result: "success" });
    const text = await metrics.registry.metrics();
    for (const name of Object.values(METRIC_NAMES))
      assert.match(text, new RegExp(`^# TYPE ${name} `, "m"), name);
    assert.equal(createMetrics().registry === metrics.registry, false);
  });
});

describe("HTTP endpoints", () => {
  it("serve health, readiness and metrics, and refuse every method that could change something", async () => {
    const metrics = createMetrics();
    let ready = false;
    const server = await startHttpServer({
      listen: { host: "127.0.0.1", port: 0 },
      registry: metrics.registry,
      readiness: () => ({ ready, reason: ready ? "converged" : "starting" }),
    });
    try {
      const port = server.address.port;
      assert.equal((await call(port, "GET", "/healthz")).status, 200);
      assert.deepEqual(await call(port, "GET", "/readyz"), { status: 503, body: "starting\n" });
      ready = true;
      assert.equal((await call(port, "GET", "/readyz")).status, 200);
      assert.match((await call(port, "GET", "/metrics")).body, /symroute_reconciles_total/);
      for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
        assert.equal((await call(port, method, "/readyz")).status, 405, method);
      }
      assert.equal((await call(port, "GET", "/apply")).status, 404);
    } finally {
      await server.close();
    }
  });
});

describe("agent lock", () => {
  it("lets one holder in per network namespace, names it to the second, and frees on release", async () => {
    const name = `symroute-agent-unit-${process.pid}`;
    const first = await acquireAgentLock(name);
    await assert.rejects(acquireAgentLock(name), (e: unknown) => {
      assert.ok(isSymrouteError(e));
      assert.equal(e.kind, "busy");
      assert.match(e.message, new RegExp(`pid ${process.pid}`));
      return true;
    });
    await first.release();
    const again = await acquireAgentLock(name);
    await again.release();
  });
});
