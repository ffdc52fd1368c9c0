// The connectivity matrix of a topology: which flows must work, which must fail before symroute,
// and what each one proves. Probes of one matrix run in parallel, so a matrix costs about one
// connect timeout however many cells fail.

import { randomBytes } from "node:crypto";
import {
  CLIENT_PORT,
  familiesOf,
  HOST_NETWORK_PORT,
  nodeCountOf,
  POD_PORT,
  poolOf,
  REMOTE_POD_PORT,
} from "./spec.ts";
import type { Host, LabSpec } from "./spec.ts";
import { INGRESS_TABLE, parseCounterPackets, spoofProbesOf } from "./spoof.ts";
import type { SpoofProbe } from "./spoof.ts";
import type { Topology } from "./topology.ts";

export type Phase = "before" | "after";

/** external: a client outside the node reaches an LB address (what symroute fixes); spoof: a
 * spoofed packet is dropped; local: what must keep working (pods, the node's own traffic). */
type CellKind = "external" | "spoof" | "local";

export interface CellSpec {
  readonly name: string;
  readonly kind: CellKind;
  readonly family: 4 | 6;
  /** Whether the cell holds without symroute, and with it. */
  readonly expectedBefore: boolean;
  readonly expectedAfter: boolean;
  readonly proves: string;
  readonly run: (topology: Topology, timeoutMs: number) => Promise<Outcome>;
}

export interface Outcome {
  readonly ok: boolean;
  readonly detail: string;
  /** The measurement itself failed (a spoofed packet not sent or never counted on the node): the
   * cell is wrong whatever it expected. */
  readonly invalid?: boolean;
}

export interface Cell {
  readonly name: string;
  readonly kind: CellKind;
  readonly family: 4 | 6;
  /** Whether the cell should hold in this phase. */
  readonly expected: boolean;
  /** Whether it held: the connection was answered, or the spoofed packet was dropped. */
  readonly ok: boolean;
  readonly detail: string;
  readonly proves: string;
  readonly invalid?: boolean;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 1_500;
const RETRY_TIMEOUT_FACTOR = 3;

function connect(from: Host, proto: "tcp" | "udp", host: string, port: number) {
  return async (topology: Topology, timeoutMs: number) => {
    const answer = await topology.probe(from).request({ op: "connect", proto, host, port, timeoutMs });
    return { ok: answer.ok, detail: answer.detail };
  };
}

/** Packets the node's ingress counter of one spoof probe has seen (src/lab/spoof.ts). */
async function ingressCount(topology: Topology, probe: SpoofProbe): Promise<number> {
  const listed = await topology.exec("node", [
    "nft",
    "-j",
    "list",
    "counter",
    "netdev",
    INGRESS_TABLE,
    probe.name,
  ]);
  return parseCounterPackets(listed.stdout, probe.name);
}

/**
 * The sender (router, or case 2's lan host) sends a UDP packet with a source that does not belong on the probe's interface. The
 * cell holds when that packet was sent, was counted on the node's ingress (so it reached the node),
 * and was not delivered. "Not delivered" is read after a control packet, sent once the spoofed one
 * was counted, has reached the same socket: the spoofed packet's path through the node is over by then.
 */
function spoofDropped(probe: SpoofProbe) {
  return async (topology: Topology, timeoutMs: number): Promise<Outcome> => {
    const sender = topology.probe(probe.sender);
    const receiver = topology.probe(probe.receiver);
    const tag = randomBytes(6).toString("hex");
    const spoofed = `spoof-${tag}`;
    const target = { host: probe.address, port: probe.port } as const;
    const counted = await ingressCount(topology, probe);
    const sent = await sender.request({ op: "send-udp", ...target, source: probe.source, payload: spoofed });
    if (!sent.ok) {
      return { ok: false, invalid: true, detail: `the spoofed packet was not sent: ${sent.detail}` };
    }
    const arrived = await poll(async () => (await ingressCount(topology, probe)) > counted, timeoutMs);
    if (!arrived) {
      return {
        ok: false,
        invalid: true,
        detail: `the spoofed packet from ${probe.source} never reached the node's ${probe.device} (ingress counter unchanged)`,
      };
    }
    const delivered = (payload: string) =>
      poll(() => receiver.request({ op: "received", payload }).then((a) => a.ok), timeoutMs);
    const control = `control-${tag}`;
    const controlSent = await topology
      .probe(probe.control.from)
      .request({ op: "send-udp", ...target, source: probe.control.source, payload: control });
    if (!controlSent.ok || !(await delivered(control))) {
      return {
        ok: false,
        invalid: true,
        detail: `the control packet from ${probe.control.source} did not arrive (${controlSent.detail})`,
      };
    }
    const seen = (await receiver.request({ op: "received", payload: spoofed })).ok;
    return seen
      ? {
          ok: false,
          detail: `a packet from ${probe.source} entering ${probe.device} was delivered to ${probe.address}: nothing dropped it`,
        }
      : {
          ok: true,
          detail: `packet from ${probe.source} reached ${probe.device} and was dropped; the control was delivered`,
        };
  };
}

/** What a spoof cell expects and proves: where the packet enters decides what held before symroute. */
export function spoofCell(probe: SpoofProbe): CellSpec {
  const v = `IPv${probe.family}`;
  const to = probe.target === "pod" ? `pod ${probe.address}` : `node's management address ${probe.address}`;
  const base = {
    kind: "spoof" as const,
    name: `${v} spoofed ${probe.source} into node ${probe.device} → ${to} is dropped`,
    family: probe.family,
    run: spoofDropped(probe),
  };
  if (probe.device === "eth0") {
    return {
      ...base,
      expectedBefore: true,
      expectedAfter: true,
      proves:
        "anti-spoofing on the management interface is not weakened: symroute lowers conf.all.rp_filter " +
        "for the external interface and must raise eth0 first",
    };
  }
  // The pool's interface (ext0, case 2's eth1). IPv4: before apply the address-less interface drops
  // every foreign source (rp_filter, KERNEL-FACTS 5); after apply either its rp_filter is still up or
  // symroute lowered it and its guard must drop the packet instead. IPv6 has no rp_filter: before
  // apply nothing stops the packet, and the cell says so.
  return probe.family === 4
    ? {
        ...base,
        expectedBefore: true,
        expectedAfter: true,
        proves:
          "the pool's interface is not opened to spoofed sources: before apply rp_filter drops the packet; " +
          "after apply symroute's anti-spoofing guard does where symroute lowered rp_filter, rp_filter where it did not",
      }
    : {
        ...base,
        expectedBefore: false,
        expectedAfter: true,
        proves:
          "IPv6 has no rp_filter: before apply the spoofed packet is delivered (nothing held), " +
          "after apply symroute's anti-spoofing guard drops it",
      };
}

/** Polls a condition with bounded retries (never a fixed sleep standing in for a condition). */
async function poll(condition: () => Promise<boolean>, withinMs: number, intervalMs = 10): Promise<boolean> {
  const attempts = Math.max(1, Math.ceil(withinMs / intervalMs));
  for (let i = 0; i < attempts; i++) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return false;
}

export function matrixOf(spec: LabSpec): CellSpec[] {
  const cells: CellSpec[] = [];
  for (const f of familiesOf(spec)) {
    const pool = poolOf(spec.case, f);
    const lb = pool.lbAddress;
    const v = `IPv${f.family}`;
    // Case 2's clients live on the pool's own link; everywhere else they come through the router.
    const external: Host = spec.case === 2 ? "lan" : "client";
    const externalWorks = spec.case === 1;
    // The ipvs-like variant has no pod backend (see kubeProxyRules).
    const podBackend = spec.kubeProxy !== "ipvs-like";
    const nodeTarget = podBackend ? POD_PORT : HOST_NETWORK_PORT;
    for (const proto of ["tcp", "udp"] as const) {
      if (podBackend) {
        cells.push({
          name: `${v} ${external} → LB ${lb}:${POD_PORT}/${proto} (pod backend)`,
          kind: "external",
          family: f.family,
          expectedBefore: externalWorks,
          expectedAfter: true,
          proves:
            "an external client reaches a pod behind the LB address, and the reply goes back the way it came",
          run: connect(external, proto, lb, POD_PORT),
        });
      }
      if (podBackend && nodeCountOf(spec) === 2) {
        cells.push({
          name: `${v} ${external} → LB ${lb}:${REMOTE_POD_PORT}/${proto} (pod on the other node)`,
          kind: "external",
          family: f.family,
          expectedBefore: externalWorks,
          expectedAfter: true,
          proves:
            "a backend on another node works: kube-proxy masquerades the request (its own mark bit), " +
            "the reply comes back through this node and still leaves by the way the request came",
          run: connect(external, proto, lb, REMOTE_POD_PORT),
        });
      }
      cells.push({
        name: `${v} ${external} → LB ${lb}:${HOST_NETWORK_PORT}/${proto} (host-network backend)`,
        kind: "external",
        family: f.family,
        expectedBefore: externalWorks,
        expectedAfter: true,
        proves:
          "an external client reaches a host-network backend (the reply's source is the node's own address)",
        run: connect(external, proto, lb, HOST_NETWORK_PORT),
      });
    }
    if (spec.case === 4) {
      const targets = [
        ...(podBackend ? [[POD_PORT, "pod backend"] as const] : []),
        [HOST_NETWORK_PORT, "host-network backend"] as const,
      ];
      for (const [port, what] of targets) {
        cells.push({
          name: `${v} pod → LB ${lb}:${port}/tcp (${what})`,
          kind: "local",
          family: f.family,
          expectedBefore: true,
          expectedAfter: true,
          proves: "a pod reaches the LB address (case 4): the reply stays inside the node",
          run: connect("podc", "tcp", lb, port),
        });
      }
    }
    cells.push({
      name: `${v} node → LB ${lb}:${nodeTarget}/tcp (node itself)`,
      kind: "local",
      family: f.family,
      expectedBefore: true,
      expectedAfter: true,
      proves:
        "the node's own connections to an LB address keep working (a published connmark recipe broke them)",
      run: connect("node", "tcp", lb, nodeTarget),
    });
    cells.push({
      name: `${v} node → client ${f.client}:${CLIENT_PORT}/tcp (node's own traffic)`,
      kind: "local",
      family: f.family,
      expectedBefore: true,
      expectedAfter: true,
      proves: "the node's own traffic still leaves by its default gateway",
      run: connect("node", "tcp", f.client, CLIENT_PORT),
    });
    cells.push({
      name: `${v} client → node ${f.node}:${HOST_NETWORK_PORT}/tcp (management address)`,
      kind: "local",
      family: f.family,
      expectedBefore: true,
      expectedAfter: true,
      proves: "the node's management address is reached as before",
      run: connect("client", "tcp", f.node, HOST_NETWORK_PORT),
    });
  }
  for (const probe of spoofProbesOf(spec)) cells.push(spoofCell(probe));
  return cells;
}

export interface MatrixOptions {
  readonly timeoutMs?: number;
}

export async function runMatrix(
  topology: Topology,
  phase: Phase,
  options: MatrixOptions = {},
): Promise<Cell[]> {
  return runCells(
    topology,
    matrixOf(topology.spec),
    (c) => (phase === "before" ? c.expectedBefore : c.expectedAfter),
    options,
  );
}

/** Runs some cells in parallel, each expected as `expectedOf` says (negative controls turn them around). */
export async function runCells(
  topology: Topology,
  specs: readonly CellSpec[],
  expectedOf: (cell: CellSpec) => boolean,
  options: MatrixOptions = {},
): Promise<Cell[]> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  return Promise.all(
    specs.map(async (c) => {
      const expected = expectedOf(c);
      let outcome = await c.run(topology, timeoutMs);
      // A loaded machine can delay an answer past the timeout; a cell that must pass gets one more
      // try with a longer one. A cell that must fail is never retried, so its cost stays one timeout.
      if ((!outcome.ok && expected) || outcome.invalid === true) {
        const retry = await c.run(topology, timeoutMs * RETRY_TIMEOUT_FACTOR);
        outcome = {
          ...retry,
          detail: `${retry.detail} (${retry.ok === expected ? "on" : "also on"} a retry)`,
        };
      }
      return {
        name: c.name,
        kind: c.kind,
        family: c.family,
        expected,
        ok: outcome.ok,
        detail: outcome.detail,
        proves: c.proves,
        ...(outcome.invalid === true ? { invalid: true } : {}),
      };
    }),
  );
}

/** Cells whose outcome is not the expected one. */
export const unexpectedCells = (cells: readonly Cell[]): Cell[] =>
  cells.filter((c) => c.ok !== c.expected || c.invalid === true);

export function formatMatrix(
  cells: readonly Cell[],
  mark: { ok: string; fail: string } = { ok: "✓", fail: "✗" },
): string {
  const width = Math.max(...cells.map((c) => c.name.length));
  return cells
    .map((c) => {
      const outcome = c.ok ? mark.ok : mark.fail;
      const expectation = c.expected ? "expected ✓" : "expected ✗";
      const right = c.ok === c.expected && c.invalid !== true;
      const flag = right ? "" : c.invalid === true ? "   <-- NOT MEASURED" : "   <-- UNEXPECTED";
      return `  ${outcome} ${c.name.padEnd(width)}  (${expectation})${flag}${right && c.ok && c.kind !== "spoof" ? "" : `  ${c.detail}`}`;
    })
    .join("\n");
}
