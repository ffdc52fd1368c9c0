// The agent's state file keeps what it writes (keepReads) instead of reading and checking the file
// again: that is only right if the read would give the same value. Proved here for every state the
// engine writes (applies, changes, removal, on generated configs and nodes): the schema accepts the
// written text and gives back exactly its JSON value, which is what the store keeps.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { createStateFile } from "../../src/adapters/state-file.ts";
import { validateConfigObject } from "../../src/config/index.ts";
import { parseSavedState } from "../../src/config/state-schema.ts";
import { createEngine } from "../../src/engine/engine.ts";
import type { SavedState } from "../../src/engine/ports.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { networkArb } from "../support/network-arb.ts";

const RUNS = Number(process.env["SYMROUTE_PROPERTY_RUNS"] ?? 100);
const EXTERNAL = ["ext0", "ext1"];

/** The text the state file holds for `state` (as createStateFile writes it). */
const fileText = (state: SavedState): string => `${JSON.stringify(state, null, 2)}\n`;

class RecordingStore extends MemoryStore {
  readonly written: SavedState[] = [];
  override async write(state: SavedState): Promise<void> {
    this.written.push(structuredClone(state));
    await super.write(state);
  }
}

/** A config: some of networks 0-5 (any subset), a firewall front end, pod CIDRs or not. */
const configArb = fc.record({
  firewall: fc.constantFrom("nftables", "iptables"),
  pods: fc.boolean(),
  networks: fc
    .subarray([0, 1, 2, 3, 4, 5])
    .chain((ids) => fc.tuple(...ids.map((i) => networkArb(i, EXTERNAL)))),
});

test("every state the engine writes reads back as exactly its JSON value (what the agent's store keeps)", async (t) => {
  let states = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(configArb, { minLength: 1, maxLength: 3 }),
      fc.constantFrom("0", "1", "2"),
      async (configs, rpFilter) => {
        const base = articleNode();
        const node = {
          ...base,
          // Strict rp_filter is lowered and recorded: previousSysctls.
          sysctls: {
            ...base.sysctls,
            "net/ipv4/conf/all/rp_filter": rpFilter,
            ...Object.fromEntries(EXTERNAL.map((ifname) => [`net/ipv4/conf/${ifname}/rp_filter`, rpFilter])),
          },
          links: [
            ...base.links.filter((l) => l.ifname !== "ext0"),
            ...EXTERNAL.map((ifname, k) => ({ ifname, ifindex: 10 + k, up: true, kind: "veth" })),
          ],
        };
        const store = new RecordingStore();
        const engine = createEngine({ kernel: new FakeKernel(node), store });
        for (const c of configs) {
          const parsed = validateConfigObject({
            ...(c.pods ? { podCIDRs: ["10.112.0.0/12", "fd00:112::/56"] } : {}),
            firewall: c.firewall,
            networks: c.networks,
          });
          if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
          await engine.apply(parsed.config);
        }
        await engine.remove();
        for (const state of store.written) {
          states++;
          const text = fileText(state);
          const read = parseSavedState(text);
          assert.ok(read.ok, read.ok ? "" : read.problems.join("; "));
          assert.deepStrictEqual(read.state, JSON.parse(text));
        }
      },
    ),
    { numRuns: RUNS },
  );
  t.diagnostic(`${states} written states checked`);
});

test("kept writes: the next read gives what a fresh read of the file gives, not the writer's object", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "symroute-state-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const agent = createStateFile(dir, { keepReads: true });
  const fresh = createStateFile(dir);
  const written: SavedState = {
    version: 1,
    previousSysctls: { "net/ipv4/conf/all/rp_filter": "1" },
    allocations: { a: { table: 20000, mark: 1 } },
    createdLinks: ["v1"],
    rulePriorities: { from: 100, to: 200 },
    firewall: undefined,
  };
  await agent.write(written);
  const kept = await agent.read();
  assert.deepStrictEqual(kept, await fresh.read());
  assert.equal(await agent.read(), kept, "unchanged file: the kept state, not read again");
  (written.createdLinks as string[]).push("changed after the write");
  assert.deepStrictEqual(kept?.createdLinks, ["v1"]);
});
