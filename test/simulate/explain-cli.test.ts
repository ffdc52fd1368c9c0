// The explain command's pure helpers: options to a packet, snapshots, the JSON shape.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packetFromOptions, readSnapshot, traceToJson } from "../../src/cli/commands/explain.ts";
import { isSymrouteError } from "../../src/model/errors.ts";
import type { NodeState } from "../../src/model/state.ts";
import { compileRoutingState } from "../../src/simulate/compile.ts";
import { tracePacket } from "../../src/simulate/trace.ts";

const caseFile = JSON.parse(readFileSync(new URL("./cases/symroute-node.json", import.meta.url), "utf8")) as {
  state: NodeState;
};

test("options become a packet: hex and decimal marks, protocol names", () => {
  assert.deepEqual(
    packetFromOptions({
      to: "1.2.3.4",
      from: "10.0.0.1",
      iif: "eth0",
      mark: "0x100",
      proto: "tcp",
      dport: "443",
    }),
    { to: "1.2.3.4", from: "10.0.0.1", iif: "eth0", mark: 256, ipproto: 6, dport: 443 },
  );
  assert.deepEqual(packetFromOptions({ to: "1.2.3.4", mark: "16", proto: "17" }), {
    to: "1.2.3.4",
    mark: 16,
    ipproto: 17,
  });
});

test("bad options are invalid-argument errors that name the option", () => {
  const cases: [Parameters<typeof packetFromOptions>[0], RegExp][] = [
    [{ to: "1.2.3.4", mark: "0xzz" }, /--mark/],
    [{ to: "1.2.3.4", dport: "80" }, /--proto/],
    [{ to: "1.2.3.4", proto: "tcp", dport: "70000" }, /--dport/],
    [{ to: "1.2.3.4", iif: "eth0" }, /--from/],
    [{ to: "1.2.3.4", from: "10.0.0.1", iif: "eth0", oif: "eth1" }, /--oif/],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => packetFromOptions(options),
      (e: unknown) => isSymrouteError(e) && e.kind === "invalid-argument" && message.test(e.message),
    );
  }
});

test("a snapshot round-trips, and a foreign JSON file is refused with a hint", async () => {
  const dir = mkdtempSync(join(tmpdir(), "symroute-explain-"));
  try {
    const good = join(dir, "node.json");
    writeFileSync(good, JSON.stringify({ version: 1, node: caseFile.state }));
    const state = await readSnapshot(good);
    assert.equal(state.node.rules.length, caseFile.state.rules.length);
    assert.deepEqual(state.guards, []);
    const bad = join(dir, "other.json");
    writeFileSync(bad, JSON.stringify({ rules: [] }));
    await assert.rejects(readSnapshot(bad), (e: unknown) => isSymrouteError(e) && e.hint !== undefined);
    await assert.rejects(
      readSnapshot(join(dir, "missing.json")),
      (e: unknown) => isSymrouteError(e) && /missing\.json/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("JSON output has result, table, dev, gateway, rule.priority and steps", () => {
  const index = compileRoutingState(caseFile.state);
  const trace = tracePacket(
    index,
    { from: "10.112.0.5", to: "8.8.8.8", iif: "vpod", mark: 0x100 },
    { explain: true },
  );
  const json = traceToJson(trace) as Record<string, unknown> & {
    rule: { priority: number };
    steps: unknown[];
  };
  assert.equal(json["result"], "unicast");
  assert.equal(json["table"], 100);
  assert.equal(json["dev"], "ext0");
  assert.equal(json["gateway"], "1.2.3.1");
  assert.equal(json.rule.priority, 100);
  assert.ok(json.steps.length >= 3);
  assert.ok(JSON.stringify(json).length > 0);
});
