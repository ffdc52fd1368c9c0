// doctor against the lab: before apply it flags exactly the paths whose cells fail, after apply
// none (issue: "in the lab, doctor must flag exactly the cells that fail before apply and none after").

import assert from "node:assert/strict";
import { test } from "node:test";
import type { Cell } from "../../src/lab/matrix.ts";
import { runScenario } from "../../src/lab/scenario.ts";
import type { LabSpec } from "../../src/lab/spec.ts";
import { stateDirOf, symrouteArgv, writeLabConfig } from "../../src/lab/symroute.ts";
import type { Topology } from "../../src/lab/topology.ts";
import { newPrefix } from "../../src/lab/topology.ts";
import type { DoctorReport } from "../../src/verify/doctor.ts";
import { labUnavailable } from "../support/netns.ts";

// Not root: skipped; a tool the lab needs that is missing fails the file, naming it.
const missing = await labUnavailable();

/** The doctor path a lab cell is about (the cells doctor simulates). */
function pathOfCell(cell: Cell): string | undefined {
  if (/→ LB .*\(pod backend\)/.test(cell.name)) return "client to LB, pod backend";
  if (/→ LB .*\(host-network backend\)/.test(cell.name)) return "client to LB, host-network backend";
  return undefined;
}

for (const spec of [
  { case: 2, kubeProxy: "iptables", dualStack: true, firewall: "nftables" },
  { case: 3, kubeProxy: "iptables", dualStack: false, firewall: "nftables" },
  { case: 4, kubeProxy: "nftables", dualStack: true, firewall: "iptables" },
] satisfies LabSpec[]) {
  test(
    `doctor flags exactly the failing paths, case ${spec.case} (${spec.kubeProxy}, ${spec.firewall}${spec.dualStack ? ", dual-stack" : ""})`,
    { skip: missing },
    async () => {
      let topology: Topology | undefined;
      let configPath = "";
      const reports: Partial<Record<"before" | "after", DoctorReport>> = {};
      const doctor = async (): Promise<DoctorReport> => {
        if (topology === undefined) throw new Error("no topology");
        const r = await topology.exec(
          "node",
          [
            ...symrouteArgv(),
            "doctor",
            "-c",
            configPath,
            "--state-dir",
            stateDirOf(topology, "node"),
            "-o",
            "json",
          ],
          { allowFailure: true },
        );
        assert.ok(r.code === 0 || r.code === 3, `doctor exited ${r.code}: ${r.stderr}`);
        return JSON.parse(r.stdout) as DoctorReport;
      };
      const report = await runScenario(
        spec,
        {
          built: async (t) => {
            topology = t;
            configPath = await writeLabConfig(t);
          },
          step: async (name) => {
            if (name === "before" || name === "after") reports[name] = await doctor();
          },
        },
        { prefix: newPrefix() },
      );
      const before = reports.before;
      const after = reports.after;
      assert.ok(before !== undefined && after !== undefined, "doctor ran before and after");

      const key = (network: string, family: number | undefined, path: string) =>
        `${network} v${family ?? "*"} ${path}`;
      const failingCells = new Set(
        report.before
          .filter((c) => !c.ok)
          .flatMap((c) => {
            const path = pathOfCell(c);
            return path === undefined ? [] : [key("public", c.family, path)];
          }),
      );
      const flagged = new Set(
        before.findings
          // Paths of the lab's cells only; the gateway and anti-spoofing checks explain them.
          .filter(
            (f) =>
              !f.ok &&
              f.path !== "symroute" &&
              f.path !== "node" &&
              f.path !== "gateway" &&
              f.path !== "anti-spoofing",
          )
          .map((f) => key(f.network, f.family, f.path)),
      );
      assert.ok(failingCells.size > 0, "the lab has failing cells before apply");
      assert.deepEqual(
        [...flagged].sort(),
        [...failingCells].sort(),
        JSON.stringify(before.findings, null, 2),
      );

      assert.ok(
        report.after?.every((c) => c.ok),
        "every cell holds after apply",
      );
      const stillFlagged = after.findings.filter((f) => !f.ok && f.path !== "node");
      assert.deepEqual(stillFlagged, [], JSON.stringify(after.findings, null, 2));
    },
  );
}
