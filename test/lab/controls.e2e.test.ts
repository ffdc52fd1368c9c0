// Negative controls for the lab's cells: with the protection a cell relies on taken away on
// purpose, the cell must fail. Otherwise a passing matrix would prove nothing (issue 18).
//   - spoof cells (cases 2-4): with rp_filter off before apply, with symroute's guards removed
//     after apply (the spoofs only they stopped), and with both, every spoofed packet is counted on
//     the node's ingress and delivered;
//   - external cells (cases 3, 4): with symroute's ip rules removed after apply, or its connection
//     mark, every client → LB cell fails; `apply` repairs it and they hold again.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  disableRpFilter,
  removeSymrouteGuards,
  removeSymrouteMark,
  removeSymrouteRules,
  restoreSysctls,
} from "../../src/lab/controls.ts";
import { matrixOf, runCells, spoofCell, unexpectedCells } from "../../src/lab/matrix.ts";
import type { Cell, CellSpec } from "../../src/lab/matrix.ts";
import { describeSpec } from "../../src/lab/spec.ts";
import type { LabSpec } from "../../src/lab/spec.ts";
import { spoofProbesOf } from "../../src/lab/spoof.ts";
import { runSymroute, writeLabConfig } from "../../src/lab/symroute.ts";
import type { SymrouteRun } from "../../src/lab/symroute.ts";
import { buildTopology, newPrefix } from "../../src/lab/topology.ts";
import type { Topology } from "../../src/lab/topology.ts";
import { labUnavailable } from "../support/netns.ts";

// Not root: skipped; a tool the lab needs that is missing fails the file, naming it.
const missing = await labUnavailable();

const show = (cells: readonly Cell[]) =>
  cells.map((c) => `${c.name}: ${c.ok ? "held" : "did not hold"} (${c.detail})`).join("\n  ");

/** Runs cells expecting each to fail, and checks that every one did, for the right reason. */
async function assertAllFail(topology: Topology, cells: readonly CellSpec[], why: string): Promise<void> {
  assert.ok(cells.length > 0, `no cells to run ${why}`);
  const results = await runCells(topology, cells, () => false);
  assert.deepEqual(
    unexpectedCells(results),
    [],
    `${why}, these cells still held:\n  ${show(unexpectedCells(results))}`,
  );
}

async function assertAllHold(topology: Topology, cells: readonly CellSpec[], why: string): Promise<void> {
  const results = await runCells(topology, cells, () => true);
  assert.deepEqual(unexpectedCells(results), [], `${why}:\n  ${show(unexpectedCells(results))}`);
}

async function apply(topology: Topology, config: string): Promise<void> {
  const run: SymrouteRun = await runSymroute(topology, "apply", config);
  assert.equal(run.code, 0, `${run.argv.join(" ")}\n${run.stdout}\n${run.stderr}`);
}

const SPECS: readonly LabSpec[] = [
  { case: 3, kubeProxy: "iptables", firewall: "nftables", dualStack: true },
  { case: 4, kubeProxy: "nftables", firewall: "iptables", dualStack: true },
  // Case 2 routes the pool without rules or marks; its spoof cells go into eth1 from the lan host.
  { case: 2, kubeProxy: "iptables", firewall: "nftables", dualStack: true },
];

describe("lab negative controls: each cell fails without what it relies on", () => {
  for (const spec of SPECS) {
    it(describeSpec(spec), { skip: missing, timeout: 180_000 }, async () => {
      const topology = await buildTopology(spec, { prefix: newPrefix() });
      try {
        const spoof = spoofProbesOf(spec).map(spoofCell);
        const external = matrixOf(spec).filter((c) => c.kind === "external");
        const intoPoolLink = spoof.filter((c) => !c.name.includes("into node eth0"));
        assert.ok(intoPoolLink.length > 0 && intoPoolLink.length < spoof.length);

        // Before apply: with rp_filter off, every spoofed packet arrives (the IPv6 ones arrive anyway).
        const sysctls = await disableRpFilter(topology);
        await assertAllFail(topology, spoof, "with rp_filter off before apply");
        await restoreSysctls(topology, sysctls);

        const config = await writeLabConfig(topology);
        await apply(topology, config);
        await assertAllHold(topology, external, "after apply the external cells hold");

        if (spec.case !== 2) {
          // symroute's ip rules gone: no reply finds the pool's table.
          assert.ok((await removeSymrouteRules(topology)) > 0, "symroute wrote ip rules");
          await assertAllFail(topology, external, "with symroute's ip rules removed");
          await apply(topology, config);
          await assertAllHold(topology, external, "apply puts the rules back");

          // symroute's connection mark gone: replies are not marked, the fwmark rule never matches.
          assert.ok((await removeSymrouteMark(topology)) > 0, "symroute wrote mark rules");
          await assertAllFail(topology, external, "with symroute's connection mark removed");
          await apply(topology, config);
          await assertAllHold(topology, external, "apply puts the mark back");
        }

        // After apply: in cases 3, 4 (connmark) ext0's rp_filter is 0, so symroute's guards alone stop
        // the spoofs into it; in case 2 they alone stop the IPv6 ones (IPv4 keeps rp_filter). With the
        // guards removed those arrive. The rest still has rp_filter: with it off, every one arrives.
        assert.ok((await removeSymrouteGuards(topology)) > 0, "symroute wrote anti-spoofing guards");
        await assertAllFail(
          topology,
          intoPoolLink.filter((c) => spec.case !== 2 || c.family === 6),
          "with symroute's anti-spoofing guards removed after apply",
        );
        await disableRpFilter(topology);
        await assertAllFail(topology, spoof, "with the guards removed and rp_filter off after apply");
      } finally {
        await topology.teardown();
      }
    });
  }
});
