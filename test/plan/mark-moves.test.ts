// Which networks a changed marks.mask moves (src/plan/mark-moves.ts), and plan's warning for them.

import { test } from "node:test";
import assert from "node:assert/strict";
import { markMoves, markMoveWarning } from "../../src/plan/mark-moves.ts";

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
