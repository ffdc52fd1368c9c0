// Which networks a changed marks.mask moves (src/plan/mark-moves.ts), and plan's warning for them;
// with the state file lost, the values the node shows (src/plan/recovered-allocations.ts).

import { test } from "node:test";
import assert from "node:assert/strict";
import { markMoves, markMoveWarning } from "../../src/plan/mark-moves.ts";
import type { Config } from "../../src/config/schema.ts";
import { createEngine } from "../../src/engine/engine.ts";
import { FakeKernel, articleNode } from "../support/fake-kernel.ts";
import { MemoryStore } from "../support/memory-store.ts";
import { configFrom } from "../support/config.ts";
import { isSymrouteError } from "../../src/model/errors.ts";

test("a network whose saved value the new mask leaves out moves; kept values, new and removed networks do not", () => {
  const saved = { a: { table: 20000, mark: 0x1 }, b: { table: 20001, mark: 0x2 }, gone: { mark: 0x3 } };
  const desired = { a: { table: 20000, mark: 0x4 }, b: { table: 20001, mark: 0x2 }, fresh: { mark: 0x8 } };
  assert.deepEqual(markMoves(saved, desired, 0xfe), [{ network: "a", from: 0x1, to: 0x4, table: 20000 }]);
  assert.deepEqual(markMoves(saved, saved, 0xff), []);
});

test("an old value that matches another network's new one under the new mask names it: its table takes the replies", () => {
  const saved = { a: { table: 20000, mark: 0x1 }, c: { table: 20002, mark: 0x3 } };
  const desired = { a: { table: 20000, mark: 0x2 }, c: { table: 20002, mark: 0x4 } };
  const moves = markMoves(saved, desired, 0xfe);
  assert.deepEqual(moves, [
    { network: "a", from: 0x1, to: 0x2, table: 20000 },
    { network: "c", from: 0x3, to: 0x4, table: 20002, takenBy: "a" },
  ]);
  const [, c] = moves;
  const warning = markMoveWarning(c!, 0xfe, 0xff);
  assert.match(warning, /^network "c": its mark moves from 0x3 to 0x4 \(marks\.mask 0xfe\)/);
  assert.match(warning, /are routed by network "a"'s table \(its value 0x2 matches under marks\.mask 0xfe\)/);
  assert.match(warning, /conntrack -L -m 0x3\/0xff; apply refuses the move unless --force$/);
});

// With the state file lost, the allocations come from the node (src/plan/recovered-allocations.ts):
// allocated afresh in the config's order, a network after a removed one took the removed one's
// table and mark, and stranded its open connections without a word.
const TWO = configFrom(`networks:
  - { name: a, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
  - { name: b, addresses: [1.2.4.0/24], interface: ext0, gateway: 1.2.4.1 }
`);
const B_ONLY = (marks = ""): Config =>
  configFrom(`${marks}networks:
  - { name: b, addresses: [1.2.4.0/24], interface: ext0, gateway: 1.2.4.1 }
`);

test("a lost state file moves no table or mark: they are taken from the node", async () => {
  const kernel = new FakeKernel(articleNode());
  const store = new MemoryStore();
  const engine = createEngine({ kernel, store });
  await engine.apply(TWO);
  await engine.apply(B_ONLY());
  assert.deepEqual(store.state?.allocations, { b: { table: 20001, mark: 0x2 } });
  await store.remove();
  const plan = await engine.plan(B_ONLY());
  assert.deepEqual(
    plan.networks.map((n) => [n.name, n.table, n.mark]),
    [["b", 20001, 0x2]],
  );
  assert.equal(plan.inSync, true, JSON.stringify(plan.changes));
  // A mask that leaves the node's value out is a move, warned and refused as with a state file.
  const moved = await engine.plan(B_ONLY("marks: { mask: 0xfd }\n"));
  assert.ok(
    moved.warnings.some((w) => w.startsWith('network "b": its mark moves from 0x2 to 0x1')),
    moved.warnings.join("\n"),
  );
  await assert.rejects(engine.apply(B_ONLY("marks: { mask: 0xfd }\n")), /mark of 1 network would move/);
});

test("apply --dry-run answers a mark move as the apply would: refused without --force, its payloads with it", async () => {
  const kernel = new FakeKernel(articleNode());
  const engine = createEngine({ kernel, store: new MemoryStore() });
  await engine.apply(TWO);
  await engine.apply(B_ONLY()); // b keeps 0x2, which marks.mask 0xfd leaves out
  const ran = kernel.log.length;
  const moved = B_ONLY("marks: { mask: 0xfd }\n");
  // It exited 0 with the move's payloads, and the apply it previewed then refused (exit 1).
  await assert.rejects(
    engine.apply(moved, { dryRun: true }),
    (e: unknown) =>
      isSymrouteError(e) && e.kind === "conflict" && /mark of 1 network would move/.test(e.message),
  );
  const forced = await engine.apply(moved, { dryRun: true, moveMarks: true });
  assert.equal(forced.applied, false);
  const lines = forced.payloads.ip.flatMap((b) => b.lines);
  assert.ok(
    lines.some((l) => /^rule add priority 1001 fwmark 0x4\/0xfd lookup 20001 /.test(l)),
    lines.join("\n"),
  );
  assert.equal(kernel.log.length, ran, "a dry run runs nothing");
});
