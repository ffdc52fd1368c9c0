// Running symroute on a lab node: the config the lab hands it, and the CLI inside the namespace.

import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { builtTreeIsFresh, REPO_ROOT } from "./build-freshness.ts";
import type { ToolResult } from "../adapters/exec.ts";
import { familiesOf, poolOf } from "./spec.ts";
import type { LabSpec } from "./spec.ts";
import type { Topology } from "./topology.ts";

const KUBE_PROXY_MODE = { iptables: "iptables", nftables: "nftables", "ipvs-like": "ipvs" } as const;

/** The symroute configuration for a lab spec, as YAML text (the file a user would write). */
export function labConfigText(spec: LabSpec): string {
  const families = familiesOf(spec);
  const pools = families.map((f) => poolOf(spec.case, f));
  const first = pools[0];
  if (first === undefined) throw new Error("a lab spec has at least one family");
  const gateways = pools.flatMap((p) => (p.gateway === undefined ? [] : [p.gateway]));
  const lines = [
    `# symroute lab, case ${spec.case}: kube-proxy ${spec.kubeProxy}, ${spec.dualStack ? "dual-stack" : "IPv4"}`,
    `podCIDRs: [${families.map((f) => f.podCIDR).join(", ")}]`,
    "networks:",
    "  - name: public",
    `    addresses: [${pools.map((p) => p.prefix).join(", ")}]`,
    `    interface: ${first.interface}`,
    ...(gateways.length === 0
      ? []
      : [gateways.length === 1 ? `    gateway: ${gateways[0]}` : `    gateway: [${gateways.join(", ")}]`]),
    `firewall: ${spec.firewall}`,
    `kubeProxyMode: ${KUBE_PROXY_MODE[spec.kubeProxy]}`,
    "",
  ];
  return lines.join("\n");
}

/**
 * The command that runs symroute: $SYMROUTE_LAB_CLI if set (a path to an executable); the built
 * CLI in bin/symroute when the lab runs from dist, or from source with a build newer than every
 * source file; otherwise the TypeScript source through tsx (so that a stale build is never tested).
 */
export function symrouteArgv(): string[] {
  const override = process.env["SYMROUTE_LAB_CLI"];
  if (override !== undefined && override !== "") return [override];
  if (import.meta.url.endsWith(".ts") && !builtTreeIsFresh()) {
    return [process.execPath, "--import", import.meta.resolve("tsx"), join(REPO_ROOT, "src/cli/main.ts")];
  }
  return [process.execPath, join(REPO_ROOT, "bin/symroute")];
}

export interface SymrouteRun extends ToolResult {
  /** The command as a user would type it (symroute by name, in the node's namespace). */
  readonly argv: readonly string[];
}

/** Writes the lab's config into the run directory and returns its path. */
export async function writeLabConfig(
  topology: Topology,
  text: string = labConfigText(topology.spec),
): Promise<string> {
  const path = join(topology.dir, "symroute.yaml");
  await writeFile(path, text);
  return path;
}

/**
 * Runs `symroute <command> -c CONFIG --state-dir DIR ...` in the node's namespace. Exit codes are
 * the caller's to judge (plan exits 2 when changes are pending).
 */
export async function runSymroute(
  topology: Topology,
  command: "plan" | "apply" | "delete",
  configPath: string,
  node: "node" | "node2" = "node",
): Promise<SymrouteRun> {
  const args = [command, "-c", configPath, "--state-dir", stateDirOf(topology, node)];
  const argv = [...symrouteArgv(), ...args];
  const result = await topology.exec(node, argv, { allowFailure: true });
  return { ...result, argv: ["ip", "netns", "exec", topology.namespaceOf(node), "symroute", ...args] };
}

/** Each node keeps its own state, as each real node does. */
export const stateDirOf = (topology: Topology, node: "node" | "node2"): string =>
  join(topology.dir, node === "node" ? "state" : `state-${node}`);
