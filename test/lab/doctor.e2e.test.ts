// doctor agrees with the traffic (issue 17 item 5): on every lab variant (cases 1-4, two nodes,
// IPVS-like, both firewall front ends) before and after `apply`, and on broken configurations
// (symroute's rules removed, its mark removed, its ARP probes removed, a wrong gateway, the IPv6
// gateway forgotten, an interface that does not exist), doctor's verdict for each path equals what
// real traffic does in the lab's matrix. One topology per variant; the broken configurations share
// the topology of two variants (one per firewall front end).
//
// A path of the matrix (a client → LB cell) maps to doctor's findings for the same network, family
// and client whose kube-proxy services (read from the node's rules) hold the cell's LB address, port
// and protocol; under IPVS (no DNAT rules) to the finding of the same backend kind. Its verdict is
// that all of them are ok, and none of `interface` for the network. A spoof cell into the pool's
// interface maps to the anti-spoofing finding of its family.
//
// Order: the cells run first, then doctor (the traffic has made the node ask for its next hops: an
// unresolved gateway shows only then).

import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { removeSymrouteArpProbes, removeSymrouteMark, removeSymrouteRules } from "../../src/lab/controls.ts";
import { matrixOf, runCells } from "../../src/lab/matrix.ts";
import type { Cell, CellSpec } from "../../src/lab/matrix.ts";
import { describeSpec, familiesOf, nodesOf, poolOf } from "../../src/lab/spec.ts";
import type { FamilyPlan, LabSpec } from "../../src/lab/spec.ts";
import {
  labConfigText,
  runSymroute,
  stateDirOf,
  symrouteArgv,
  writeLabConfig,
} from "../../src/lab/symroute.ts";
import { buildTopology, newPrefix } from "../../src/lab/topology.ts";
import type { Topology } from "../../src/lab/topology.ts";
import { formatServiceAddress } from "../../src/model/services.ts";
import type { DoctorReport, Finding } from "../../src/verify/doctor.ts";
import { labUnavailable } from "../support/netns.ts";
import { VARIANTS } from "./variants.ts";

// Not root: skipped; a tool the lab needs that is missing fails the file, naming it.
const missing = await labUnavailable();

/** The clients of the lab's external cells: the lan host in case 2, the client beyond the router otherwise. */
const clientOf = (spec: LabSpec, f: FamilyPlan): string => (spec.case === 2 ? f.lan : f.client);

async function doctor(topology: Topology, config: string): Promise<DoctorReport> {
  const clients = familiesOf(topology.spec).flatMap((f) => ["--client", clientOf(topology.spec, f)]);
  const r = await topology.exec(
    "node",
    [
      ...symrouteArgv(),
      "doctor",
      "-c",
      config,
      "--state-dir",
      stateDirOf(topology, "node"),
      ...clients,
      "-o",
      "json",
    ],
    { allowFailure: true },
  );
  assert.ok(r.code === 0 || r.code === 3, `doctor exited ${r.code}: ${r.stderr}`);
  const report = JSON.parse(r.stdout) as DoctorReport;
  assert.equal(r.code === 0, report.healthy, "exit 0 exactly when healthy");
  return report;
}

/** The cells doctor has a verdict for. */
function comparable(spec: LabSpec): CellSpec[] {
  return matrixOf(spec).filter(
    (c) => c.kind === "external" || (c.kind === "spoof" && !c.name.includes("into node eth0 ")),
  );
}

/** The findings that decide a cell, or a message saying why there are none. */
function findingsOf(
  spec: LabSpec,
  cell: Pick<Cell, "name" | "kind" | "family">,
  report: DoctorReport,
): Finding[] | string {
  const f = familiesOf(spec).find((p) => p.family === cell.family) as FamilyPlan;
  const mine = report.findings.filter((x) => x.network === "public" && x.family === cell.family);
  if (cell.kind === "spoof") {
    const spoof = mine.filter((x) => x.path === "anti-spoofing");
    return spoof.length > 0 ? spoof : "no anti-spoofing finding";
  }
  const broken = mine.filter((x) => x.path === "interface");
  if (broken.length > 0) return broken;
  const m = /→ LB (.+):([0-9]+)\/(tcp|udp) \((.+)\)$/.exec(cell.name);
  assert.ok(m !== null, `cell name ${cell.name}`);
  const [, address = "", port = "", proto = "", kind = ""] = m;
  const service = `${formatServiceAddress({ family: cell.family, address, proto, port: Number(port) })} →`;
  const client = clientOf(spec, f);
  const byService = mine.filter(
    (x) => x.client === client && (x.services ?? []).some((s) => s.startsWith(service)),
  );
  if (byService.length > 0) return byService;
  // IPVS: no DNAT rules to read, the backend kind decides.
  const byKind = mine.filter(
    (x) =>
      x.client === client &&
      x.services === undefined &&
      x.path === `client to LB, ${kind}` &&
      x.backend === address,
  );
  return byKind.length > 0 ? byKind : `no finding for client ${client} and service ${service}`;
}

const verdictOf = (found: Finding[] | string): boolean | undefined =>
  typeof found === "string" ? undefined : found.every((x) => x.ok);

const show = (found: Finding[] | string): string =>
  typeof found === "string"
    ? found
    : found
        .map(
          (x) =>
            `${x.ok ? "ok" : "FAIL"} ${x.path}: ${x.summary}${x.cause === undefined ? "" : ` (cause: ${x.cause})`}`,
        )
        .join("; ");

/**
 * Runs the comparable cells, then doctor, and asserts that doctor's verdict for each cell is what the
 * traffic did. `expected` only decides which failing cells get a retry with a longer timeout (so
 * that load does not turn a slow answer into a failure); the verdicts compared are doctor's.
 */
async function compare(
  topology: Topology,
  config: string,
  what: string,
  expected: (cell: CellSpec) => boolean,
  kinds: readonly CellSpec["kind"][] = ["external", "spoof"],
): Promise<void> {
  const spec = topology.spec;
  const cells = comparable(spec).filter((c) => kinds.includes(c.kind));
  const results = await runCells(topology, cells, expected);
  // After the traffic: it has made the node ask for its next hops, so an unresolved gateway shows.
  const report = await doctor(topology, config);
  const disagreements: string[] = [];
  for (const cell of results) {
    const found = findingsOf(spec, cell, report);
    const verdict = verdictOf(found);
    if (cell.invalid === true || verdict !== cell.ok)
      disagreements.push(
        `${cell.name}: traffic ${cell.invalid === true ? "not measured" : cell.ok ? "held" : "failed"} (${cell.detail}); doctor: ${show(found)}`,
      );
  }
  assert.deepEqual(disagreements, [], `${describeSpec(spec)}, ${what}:\n  ${disagreements.join("\n  ")}`);
}

/** What a cell is expected to do (for its retry only): spoofs dropped, external cells as given. */
const externalFails =
  (fails: (cell: CellSpec) => boolean) =>
  (cell: CellSpec): boolean =>
    cell.kind !== "external" || !fails(cell);

async function applyOnEveryNode(topology: Topology, config: string, expectOk = true): Promise<void> {
  for (const n of nodesOf(topology.spec)) {
    const run = await runSymroute(topology, "apply", config, n);
    if (expectOk) assert.equal(run.code, 0, `${run.argv.join(" ")}\n${run.stdout}\n${run.stderr}`);
  }
}

/** The lab's config with one change, written next to it. */
async function variantConfig(
  topology: Topology,
  name: string,
  edit: (text: string) => string,
): Promise<string> {
  const text = edit(labConfigText(topology.spec));
  assert.notEqual(text, labConfigText(topology.spec), `${name}: the edit changed the config`);
  const path = join(topology.dir, `${name}.yaml`);
  await writeFile(path, text);
  return path;
}

/** Broken configurations on a case 3 dual-stack topology, each repaired by `apply` afterwards (node2, when there is one, only serves a backend). */
async function brokenConfigurations(topology: Topology, config: string): Promise<void> {
  const v4 = familiesOf(topology.spec)[0] as FamilyPlan;
  const pool4 = poolOf(topology.spec.case, v4);

  assert.ok((await removeSymrouteRules(topology)) > 0, "symroute wrote ip rules");
  await compare(
    topology,
    config,
    "symroute's ip rules removed",
    externalFails(() => true),
  );
  await applyOnEveryNode(topology, config);

  assert.ok((await removeSymrouteMark(topology)) > 0, "symroute wrote mark rules");
  await compare(
    topology,
    config,
    "symroute's connection mark removed",
    externalFails(() => true),
  );
  await applyOnEveryNode(topology, config);

  assert.ok((await removeSymrouteArpProbes(topology)) > 0, "symroute wrote ARP probes");
  await topology.exec("node", ["ip", "-4", "neigh", "flush", "dev", pool4.interface]);
  await compare(
    topology,
    config,
    "symroute's ARP probes removed",
    externalFails((c) => c.family === 4),
  );
  await applyOnEveryNode(topology, config);

  // A gateway nobody answers for: routing is as configured, the next hop never resolves.
  const wrongGateway = await variantConfig(topology, "wrong-gateway", (t) =>
    t
      .replace(`${pool4.gateway ?? ""},`, "1.2.3.99,")
      .replace(`gateway: ${pool4.gateway ?? ""}\n`, "gateway: 1.2.3.99\n"),
  );
  await applyOnEveryNode(topology, wrongGateway);
  await compare(
    topology,
    wrongGateway,
    "a wrong IPv4 gateway applied",
    externalFails((c) => c.family === 4),
  );

  // The IPv6 router forgotten (docs/config.md: plan warns): IPv6 clients beyond the router get no answer.
  const v6 = familiesOf(topology.spec)[1];
  if (v6 !== undefined) {
    const halfGateway = await variantConfig(topology, "half-gateway", (t) =>
      t.replace(/gateway: \[([^,]+), [^\]]+\]/, "gateway: $1"),
    );
    await applyOnEveryNode(topology, halfGateway);
    await compare(
      topology,
      halfGateway,
      "the IPv6 gateway left out",
      externalFails((c) => c.family === 6),
    );
  }

  // An interface that is not there (a typo): before apply and after the apply it makes fail.
  for (const n of nodesOf(topology.spec)) await runSymroute(topology, "delete", config, n);
  const typo = await variantConfig(topology, "missing-interface", (t) =>
    t.replace(`interface: ${pool4.interface}`, "interface: ext9"),
  );
  // Its spoof cells enter ext0, which this configuration does not name: only its paths compare.
  await compare(topology, typo, "the network's interface missing, before apply", () => false, ["external"]);
  await applyOnEveryNode(topology, typo, false);
  await compare(topology, typo, "the network's interface missing, after apply", () => false, ["external"]);
  await applyOnEveryNode(topology, config);
}

/** The variants whose topology also carries the broken configurations: one per front end. */
const BROKEN_ON = (spec: LabSpec): boolean => spec.case === 3 && spec.dualStack;

// Two topologies at a time: most of a comparison is waiting for the cells that must fail to time out.
describe(
  "doctor agrees with the traffic, on every lab variant and on broken configurations",
  { concurrency: 2 },
  () => {
    for (const spec of VARIANTS) {
      it(
        `${describeSpec(spec)}${BROKEN_ON(spec) ? ", and broken configurations" : ""}`,
        { skip: missing, timeout: 300_000 },
        async () => {
          const topology = await buildTopology(spec, { prefix: newPrefix() });
          try {
            const config = await writeLabConfig(topology);
            await compare(topology, config, "before apply", (c) => c.expectedBefore);
            await applyOnEveryNode(topology, config);
            await compare(topology, config, "after apply", (c) => c.expectedAfter);
            if (BROKEN_ON(spec)) await brokenConfigurations(topology, config);
          } finally {
            await topology.teardown();
          }
        },
      );
    }
  },
);
