// Hand-written cases, one per kernel behaviour the simulator models (test/simulate/cases/*.json).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import type { NodeState } from "../../src/model/state.ts";
import { compileRoutingState } from "../../src/simulate/compile.ts";
import { formatTrace } from "../../src/simulate/format.ts";
import { tracePacket } from "../../src/simulate/trace.ts";
import type { Packet } from "../../src/simulate/types.ts";

interface CaseFile {
  readonly state: NodeState;
  readonly cases: readonly {
    readonly name: string;
    readonly packet: Packet;
    readonly expect: Record<string, unknown>;
  }[];
}

const dir = new URL("./cases/", import.meta.url);
for (const file of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
  const doc = JSON.parse(readFileSync(new URL(file, dir), "utf8")) as CaseFile;
  const index = compileRoutingState(doc.state);
  for (const c of doc.cases) {
    test(`${file}: ${c.name}`, () => {
      const trace = tracePacket(index, c.packet);
      const explained = tracePacket(index, c.packet, { explain: true });
      const why = formatTrace(explained).join("\n");
      // The explanation never changes the verdict.
      assert.equal(explained.result, trace.result, why);
      const e = c.expect;
      assert.equal(trace.result, e["result"], why);
      if ("table" in e) assert.equal(trace.table, e["table"], why);
      if ("dev" in e) assert.equal(trace.dev, e["dev"], why);
      if ("gateway" in e) assert.equal(trace.gateway, e["gateway"], why);
      if ("errno" in e) assert.equal(trace.errno, e["errno"], why);
      if ("rule" in e) assert.equal(trace.rule?.priority, e["rule"], why);
      if ("rpAccepted" in e) assert.equal(trace.rpFilter?.accepted, e["rpAccepted"], why);
    });
  }
}
