// What the record keeps after a roll back (rolledBackRecord), one row per case: what was saved,
// what the failed run would have recorded, what the roll back left, and the record it must write.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { SavedState } from "../../src/engine/ports.ts";
import { rolledBackRecord, type RollBackLeft } from "../../src/engine/steps/rollback-record.ts";

const spec = (backend: "nftables" | "iptables", pool: string) => ({
  backend,
  mask: 255,
  entries: [{ network: "n", family: 4 as const, iif: "ext0", pools: [pool], value: 1 }],
});

/** A committed record: sysctl a, link v1, table 20000, nftables, band 1000-1999, protocol 201. */
const SAVED: SavedState = {
  version: 1,
  previousSysctls: { a: "1" },
  allocations: { n: { table: 20000, mark: 1 } },
  createdLinks: ["v1"],
  firewall: "nftables",
  firewallSpec: spec("nftables", "1.2.3.0/24"),
  firewallContents: { nftables: ["rule saved"] },
  rulePriorities: { from: 1000, to: 1999 },
  routeProtocol: 201,
};

/**
 * What the failed run would have recorded: it learnt sysctl b, made link v2, moved to iptables (its
 * mangle table made), to the band 3000-3999 and to protocol 202, and freed a table.
 */
const ATTEMPTED: SavedState = {
  version: 1,
  previousSysctls: { a: "1", b: "1" },
  allocations: { n: { table: 20000, mark: 1 }, m: { table: 20001, mark: 2 } },
  freedAllocations: { gone: { table: 20002, mark: 3 } },
  createdLinks: ["v1", "v2"],
  firewall: "iptables",
  firewallSpec: spec("iptables", "5.6.7.0/24"),
  firewallContents: { iptables: ["rule attempted"] },
  rulePriorities: { from: 3000, to: 3999 },
  routeProtocol: 202,
  formerRouteProtocols: [201],
  iptablesTablesCreated: [4],
  baselineUnknown: ["createdLinks"],
};

const COMPLETE: RollBackLeft = { complete: true, linksLeft: [], linksGone: [], sysctlsLeft: new Set() };

/** The saved record back, with the tables and baseline the run knows of: a complete roll back's. */
const SAVED_BACK: SavedState = {
  ...SAVED,
  iptablesTablesCreated: [4],
  baselineUnknown: ["createdLinks"],
};

const ROWS: readonly {
  readonly name: string;
  readonly saved: SavedState | undefined;
  readonly attempted?: SavedState;
  /** Links on the node when the run started (default: v1). */
  readonly linksBefore?: readonly string[];
  readonly left: RollBackLeft;
  readonly expected: SavedState;
}[] = [
  {
    name: "first apply, all undone: nothing of the run's but its front end, marks and tables",
    saved: undefined,
    left: COMPLETE,
    expected: {
      version: 1,
      previousSysctls: {},
      allocations: {},
      createdLinks: [],
      firewall: "iptables",
      rulePriorities: { from: 3000, to: 3999 },
      routeProtocol: 202,
      formerRouteProtocols: [201],
      iptablesTablesCreated: [4],
      baselineUnknown: ["createdLinks"],
    },
  },
  {
    name: "first apply, a sysctl write and a link left: both recorded, in progress",
    saved: undefined,
    left: { complete: false, linksLeft: ["v2"], linksGone: [], sysctlsLeft: new Set(["b"]) },
    expected: {
      version: 1,
      previousSysctls: { b: "1" },
      allocations: {},
      createdLinks: ["v2"],
      firewall: "iptables",
      rulePriorities: { from: 3000, to: 3999 },
      routeProtocol: 202,
      formerRouteProtocols: [201],
      iptablesTablesCreated: [4],
      baselineUnknown: ["createdLinks"],
      inProgress: true,
    },
  },
  {
    name: "all undone: the saved record, firewall and marks included",
    saved: SAVED,
    left: COMPLETE,
    expected: SAVED_BACK,
  },
  {
    name: "all undone after a crash (the saved record in progress): still in progress",
    saved: { ...SAVED, inProgress: true },
    left: COMPLETE,
    expected: { ...SAVED_BACK, inProgress: true },
  },
  {
    name: "incomplete: the sysctl left is recorded; both protocols, and the saved band",
    saved: SAVED,
    left: { ...COMPLETE, complete: false, sysctlsLeft: new Set(["b"]) },
    expected: {
      ...SAVED_BACK,
      previousSysctls: { a: "1", b: "1" },
      rulePriorities: { from: 1000, to: 1999 },
      routeProtocol: 202,
      formerRouteProtocols: [201],
      inProgress: true,
    },
  },
  {
    name: "incomplete, an old record without a band: the run's band",
    saved: (({ rulePriorities: _band, ...rest }) => rest)(SAVED),
    left: { ...COMPLETE, complete: false },
    expected: {
      ...SAVED_BACK,
      rulePriorities: { from: 3000, to: 3999 },
      routeProtocol: 202,
      formerRouteProtocols: [201],
      inProgress: true,
    },
  },
  {
    name: "a saved link not on the node (a crash's record named it before it was made): not recorded",
    saved: SAVED,
    linksBefore: [],
    left: COMPLETE,
    expected: { ...SAVED_BACK, createdLinks: [] },
  },
  {
    name: "a saved link the run deleted and could not add back: not recorded",
    saved: SAVED,
    left: { ...COMPLETE, complete: false, linksGone: ["v1"] },
    expected: {
      ...SAVED_BACK,
      createdLinks: [],
      routeProtocol: 202,
      formerRouteProtocols: [201],
      inProgress: true,
    },
  },
  {
    name: "a link the run made and could not delete: recorded with the saved one",
    saved: SAVED,
    left: { ...COMPLETE, complete: false, linksLeft: ["v2"] },
    expected: {
      ...SAVED_BACK,
      createdLinks: ["v1", "v2"],
      routeProtocol: 202,
      formerRouteProtocols: [201],
      inProgress: true,
    },
  },
  {
    name: "the tables a crashed run's record said it might make are not carried: the run resolved them",
    saved: { ...SAVED, inProgress: true, iptablesTablesCreating: [6] },
    attempted: { ...ATTEMPTED, iptablesTablesCreating: [6] },
    left: COMPLETE,
    expected: { ...SAVED_BACK, iptablesTablesCreating: undefined, inProgress: true },
  },
];

for (const row of ROWS) {
  test(`rolledBackRecord: ${row.name}`, () => {
    const record = rolledBackRecord(
      row.saved,
      row.attempted ?? ATTEMPTED,
      row.linksBefore ?? ["v1"],
      row.left,
    );
    // undefined fields in a row are absent from the record.
    assert.deepEqual(JSON.parse(JSON.stringify(record)), JSON.parse(JSON.stringify(row.expected)));
  });
}
