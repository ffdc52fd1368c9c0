// A network added in the edit that removes another (or a rename) takes a table and mark no network
// held in the previous record while the room has one: the removed network's connections still in
// conntrack carry its old mark, and a newly added network holding that value would route their
// replies by its own table and gateway, silently (src/plan/desired.ts, the Allocator).

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { computeDesired, type SavedPlanningState } from "../../src/plan/desired.ts";
import { articleNode } from "../support/fake-kernel.ts";
import { configFrom } from "../support/config.ts";

const desiredFor = (yaml: string, saved: SavedPlanningState | undefined) =>
  computeDesired({
    config: configFrom(yaml),
    node: articleNode(),
    saved,
    firewall: "nftables",
    kubeProxyMode: "iptables",
  });

test("a network added as another is removed does not take the removed one's mark or table", () => {
  const before = desiredFor(
    `networks:
  - { name: a, addresses: [1.2.3.0/24], interface: ext0, gateway: 1.2.3.1 }
`,
    undefined,
  );
  assert.deepEqual(before.allocations, { a: { table: 20000, mark: 0x1 } });
  const after = desiredFor(
    `networks:
  - { name: b, addresses: [1.2.4.0/24], interface: ext0, gateway: 1.2.4.1 }
`,
    { allocations: before.allocations, previousSysctls: {} },
  );
  assert.deepEqual(after.allocations, { b: { table: 20001, mark: 0x2 } });
});

// The network of index i, with a gateway on ext0 (method connmark: a table and a mark).
const net = (i: number): string =>
  `  - { name: n${i}, addresses: [1.2.${10 + i}.0/24], interface: ext0, gateway: 1.2.${10 + i}.1 }\n`;
const yamlOf = (ids: readonly number[], head = ""): string => `${head}networks:\n${ids.map(net).join("")}`;

test("a freed value is remembered: a network added at a later apply avoids it, the network that held it takes it back", () => {
  const first = desiredFor(yamlOf([1, 2]), undefined);
  assert.deepEqual(first.allocations, { n1: { table: 20000, mark: 0x1 }, n2: { table: 20001, mark: 0x2 } });
  const removed = desiredFor(yamlOf([2]), { allocations: first.allocations, previousSysctls: {} });
  assert.deepEqual(removed.freedAllocations, { n1: { table: 20000, mark: 0x1 } });
  const savedAfterRemove: SavedPlanningState = {
    allocations: removed.allocations,
    freedAllocations: removed.freedAllocations!,
    previousSysctls: {},
  };
  const added = desiredFor(yamlOf([2, 3]), savedAfterRemove);
  assert.deepEqual(added.allocations.n3, { table: 20002, mark: 0x3 });
  assert.deepEqual(added.freedAllocations, { n1: { table: 20000, mark: 0x1 } });
  const back = desiredFor(yamlOf([2, 1]), savedAfterRemove);
  assert.deepEqual(back.allocations.n1, { table: 20000, mark: 0x1 });
  assert.equal(back.freedAllocations, undefined);
  assert.deepEqual(back.warnings, []);
});

test("with no value left that no network held, a freed mark is reused and plan says what it does to open connections", () => {
  const head = "marks: { mask: 0x3 }\n";
  const first = desiredFor(yamlOf([1, 2, 3], head), undefined);
  assert.deepEqual(
    Object.values(first.allocations).map((a) => a.mark),
    [0x1, 0x2, 0x3],
  );
  const after = desiredFor(yamlOf([1, 2, 4], head), { allocations: first.allocations, previousSysctls: {} });
  assert.deepEqual(after.allocations.n4, { table: 20003, mark: 0x3 });
  assert.equal(after.freedAllocations?.n3?.mark, undefined, "a reused mark is no longer freed");
  assert.deepEqual(after.freedAllocations, { n3: { table: 20002 } });
  assert.deepEqual(after.warnings, [
    'network "n4" takes mark 0x3, which network "n3" held (marks.mask 0x3 has no value left that no network held): ' +
      'connections to "n3"\'s pools still open carry 0x3 in their ct mark, so their replies are routed by table 20003 ' +
      '(network "n4"\'s) and leave by its gateway 1.2.14.1 until they close. ' +
      "List them with conntrack -L -m 0x3/0x3, or end them with conntrack -D -m 0x3/0x3",
  ]);
  // About n4 alone: n3 is named, not concerned (the agent shows it on n4's status only).
  assert.deepEqual(
    after.warningDetails.map((w) => [w.kind, w.networks]),
    [["mark-reused", ["n4"]]],
  );
});

// A sequence of edits, each applied on the record the one before left (allocations and freed).
const MARK_ROOM = [0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7];
const TABLE_ROOM = [20000, 20001, 20002, 20003, 20004, 20005, 20006];
const SMALL = "marks: { mask: 0x7 }\ntables: { from: 20000, to: 20006 }\n";

test("property: existing networks never move; new ones take a value no network held while the room has one", () => {
  const edits = fc.array(fc.subarray([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], { minLength: 1, maxLength: 7 }), {
    minLength: 1,
    maxLength: 8,
  });
  fc.assert(
    fc.property(edits, fc.boolean(), (sequence, small) => {
      let saved: SavedPlanningState | undefined;
      for (const ids of sequence) {
        const yaml = yamlOf(ids, small ? SMALL : "");
        const desired = desiredFor(yaml, saved);
        assert.deepEqual(desiredFor(yaml, saved), desired, "the same inputs give the same allocations");
        const before = saved?.allocations ?? {};
        const held = { tables: new Set<number>(), marks: new Set<number>() };
        for (const a of [...Object.values(before), ...Object.values(saved?.freedAllocations ?? {})]) {
          if (a.table !== undefined) held.tables.add(a.table);
          if (a.mark !== undefined) held.marks.add(a.mark);
        }
        const nowTables = new Set(Object.values(desired.allocations).map((a) => a.table));
        const nowMarks = new Set(Object.values(desired.allocations).map((a) => a.mark));
        for (const [name, a] of Object.entries(desired.allocations)) {
          const kept = before[name];
          if (kept !== undefined) {
            assert.deepEqual(a, kept, `network ${name} kept its table and mark`);
            continue;
          }
          const own = saved?.freedAllocations?.[name];
          if (a.mark !== undefined && a.mark !== own?.mark && held.marks.has(a.mark)) {
            assert.ok(small, "the default room is never exhausted here");
            for (const m of MARK_ROOM)
              if (!held.marks.has(m)) assert.ok(nowMarks.has(m), `0x${m.toString(16)} was free`);
            assert.ok(desired.warnings.some((w) => w.startsWith(`network "${name}" takes mark`)));
          }
          if (a.table !== undefined && a.table !== own?.table && held.tables.has(a.table)) {
            assert.ok(small, "the default room is never exhausted here");
            for (const t of TABLE_ROOM) if (!held.tables.has(t)) assert.ok(nowTables.has(t), `${t} was free`);
          }
        }
        // Freed values are held by no network now, and each value is remembered once.
        const freed = Object.values(desired.freedAllocations ?? {});
        for (const f of freed) {
          assert.ok(f.table === undefined || !nowTables.has(f.table));
          assert.ok(f.mark === undefined || !nowMarks.has(f.mark));
        }
        const freedMarks = freed.flatMap((f) => (f.mark === undefined ? [] : [f.mark]));
        assert.equal(new Set(freedMarks).size, freedMarks.length);
        saved = {
          allocations: desired.allocations,
          ...(desired.freedAllocations === undefined ? {} : { freedAllocations: desired.freedAllocations }),
          previousSysctls: {},
        };
      }
    }),
    { numRuns: Number(process.env["SYMROUTE_PROPERTY_RUNS"] ?? 150) },
  );
});
