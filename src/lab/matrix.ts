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
import type { FamilyPlan, Host, LabSpec } from "./spec.ts";
import type { Topology } from "./topology.ts";

export type Phase = "before" | "after";

export interface CellSpec {
  readonly name: string;
  readonly family: 4 | 6;
  /** Whether the cell holds without symroute, and with it. */
  readonly expectedBefore: boolean;
  readonly expectedAfter: boolean;
  readonly proves: string;
  readonly run: (topology: Topology, timeoutMs: number) => Promise<{ ok: boolean; detail: string }>;
}

export interface Cell {
  readonly name: string;
  readonly family: 4 | 6;
  /** Whether the cell should hold in this phase. */
  readonly expected: boolean;
  /** Whether it held: the connection was answered, or the spoofed packet was dropped. */
  readonly ok: boolean;
  readonly detail: string;
  readonly proves: string;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 1_500;
const RETRY_TIMEOUT_FACTOR = 3;

function connect(from: Host, proto: "tcp" | "udp", host: string, port: number) {
  return async (topology: Topology, timeoutMs: number) => {
    const answer = await topology.probe(from).request({ op: "connect", proto, host, port, timeoutMs });
    return { ok: answer.ok, detail: answer.detail };
  };
}

/**
 * A packet from a pod-range source sent into the node's eth0 by the router must not be delivered:
 * the node's strict rp_filter on eth0 drops it. A control packet from the router's own address goes
 * the same way after it; once the control has arrived, the spoofed one would have too.
 */
function spoofDropped(plan: FamilyPlan, spoofSource: string) {
  return async (topology: Topology, timeoutMs: number) => {
    const router = topology.probe("router");
    const node = topology.probe("node");
    const tag = randomBytes(6).toString("hex");
    const spoofed = `spoof-${tag}`;
    const control = `control-${tag}`;
    const target = { host: plan.node, port: HOST_NETWORK_PORT } as const;
    await router.request({ op: "send-udp", ...target, source: spoofSource, payload: spoofed });
    await router.request({ op: "send-udp", ...target, source: plan.router, payload: control });
    const delivered = (payload: string) =>
      poll(() => node.request({ op: "received", payload }).then((a) => a.ok), timeoutMs);
    if (!(await delivered(control))) {
      return { ok: false, detail: `the control packet from ${plan.router} did not arrive either` };
    }
    // Two packets sent one after the other may be handled on different CPUs; a second control sent
    // after the first has arrived leaves no doubt that the spoofed one had its turn.
    await router.request({ op: "send-udp", ...target, source: plan.router, payload: `${control}-2` });
    if (!(await delivered(`${control}-2`))) {
      return { ok: false, detail: `the second control packet from ${plan.router} did not arrive` };
    }
    const seen = (await node.request({ op: "received", payload: spoofed })).ok;
    return seen
      ? {
          ok: false,
          detail: `a packet from ${spoofSource} entering eth0 was delivered: anti-spoofing is off`,
        }
      : { ok: true, detail: `packet from ${spoofSource} dropped; control from ${plan.router} delivered` };
  };
}

/** Polls a condition with bounded retries (never a fixed sleep standing in for a condition). */
export async function poll(
  condition: () => Promise<boolean>,
  withinMs: number,
  intervalMs = 10,
): Promise<boolean> {
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
      family: f.family,
      expectedBefore: true,
      expectedAfter: true,
      proves:
        "the node's own connections to an LB address keep working (a published connmark recipe broke them)",
      run: connect("node", "tcp", lb, nodeTarget),
    });
    cells.push({
      name: `${v} node → client ${f.client}:${CLIENT_PORT}/tcp (node's own traffic)`,
      family: f.family,
      expectedBefore: true,
      expectedAfter: true,
      proves: "the node's own traffic still leaves by its default gateway",
      run: connect("node", "tcp", f.client, CLIENT_PORT),
    });
    cells.push({
      name: `${v} client → node ${f.node}:${HOST_NETWORK_PORT}/tcp (management address)`,
      family: f.family,
      expectedBefore: true,
      expectedAfter: true,
      proves: "the node's management address is reached as before",
      run: connect("client", "tcp", f.node, HOST_NETWORK_PORT),
    });
    if (f.spoofSource !== undefined) {
      cells.push({
        name: `${v} spoofed ${f.spoofSource} into node eth0 is dropped`,
        family: f.family,
        expectedBefore: true,
        expectedAfter: true,
        proves: "anti-spoofing on the management interface is not weakened (rp_filter stays strict on eth0)",
        run: spoofDropped(f, f.spoofSource),
      });
    }
  }
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
  const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const specs = matrixOf(topology.spec);
  return Promise.all(
    specs.map(async (c) => {
      const expected = phase === "before" ? c.expectedBefore : c.expectedAfter;
      let { ok, detail } = await c.run(topology, timeoutMs);
      // A loaded machine can delay an answer past the timeout; a cell that must pass gets one more
      // try with a longer one. A cell that must fail is never retried, so its cost stays one timeout.
      if (!ok && expected) {
        ({ ok, detail } = await c.run(topology, timeoutMs * RETRY_TIMEOUT_FACTOR));
        detail = ok ? `${detail} (on a retry)` : `${detail} (also on a retry)`;
      }
      return {
        name: c.name,
        family: c.family,
        expected,
        ok,
        detail,
        proves: c.proves,
      };
    }),
  );
}

/** Cells whose outcome is not the expected one. */
export const unexpectedCells = (cells: readonly Cell[]): Cell[] => cells.filter((c) => c.ok !== c.expected);

export function formatMatrix(
  cells: readonly Cell[],
  mark: { ok: string; fail: string } = { ok: "✓", fail: "✗" },
): string {
  const width = Math.max(...cells.map((c) => c.name.length));
  return cells
    .map((c) => {
      const outcome = c.ok ? mark.ok : mark.fail;
      const expectation = c.expected ? "expected ✓" : "expected ✗";
      const flag = c.ok === c.expected ? "" : "   <-- UNEXPECTED";
      return `  ${outcome} ${c.name.padEnd(width)}  (${expectation})${flag}${c.ok === c.expected && c.ok ? "" : `  ${c.detail}`}`;
    })
    .join("\n");
}
