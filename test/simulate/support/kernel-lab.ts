// A network namespace holding the random states of the differential test, and the kernel's answers
// to `ip route get` for many packets in one `ip -batch` process.

import type { Family } from "../../../src/model/address.ts";
import type { NodeState } from "../../../src/model/state.ts";
import { runTool, type ToolRunner } from "../../../src/adapters/exec.ts";
import { createLinuxKernel } from "../../../src/adapters/kernel.ts";
import { simulatorSysctls } from "../../../src/simulate/trace.ts";
import type { Packet, Trace } from "../../../src/simulate/types.ts";
import { routeGetArgs, TOPOLOGY } from "./random-state.ts";
import { missing } from "../../support/skip.ts";
import { createBareNamespace } from "../../support/netns.ts";

export type KernelAnswer =
  | {
      readonly ok: true;
      readonly type: string;
      readonly dev?: string;
      readonly gateway?: string;
      readonly table?: number;
    }
  | { readonly ok: false; readonly error: string };

/** The skip message when not root; a missing or failing `ip netns` throws (the test fails). */
export async function namespacesAvailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return missing("root", "network namespaces");
  await runTool("ip", ["netns", "list"]);
  return undefined;
}

export class KernelLab {
  readonly ns: string;
  private readonly namespace: ReturnType<typeof createBareNamespace>;
  private constructor(namespace: ReturnType<typeof createBareNamespace>) {
    this.namespace = namespace;
    this.ns = namespace.name;
  }

  static async create(prefix: string): Promise<KernelLab> {
    const lab = new KernelLab(createBareNamespace(prefix));
    try {
      await lab.batch(4, TOPOLOGY.setup);
    } catch (error) {
      await lab.destroy();
      throw error;
    }
    return lab;
  }

  async destroy(): Promise<void> {
    this.namespace.destroy();
  }

  /** One `ip [-6] -batch -`; throws with the failing line. */
  async batch(family: Family, lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    const args = ["-n", this.ns, ...(family === 6 ? ["-6"] : []), "-batch", "-"];
    const result = await runTool("ip", args, { input: `${lines.join("\n")}\n`, allowFailure: true });
    if (result.code !== 0) {
      const m = /Command failed [^:\n]*:(\d+)/.exec(result.stderr);
      const line = m === null ? "?" : (lines[Number(m[1]) - 1] ?? "?");
      throw new Error(`ip batch failed at "${line}": ${result.stderr.trim()}`);
    }
  }

  /**
   * Install what the kernel accepts: a line it refuses (an IPv6 on-link gateway that an earlier route
   * of the table already covers by another device) is dropped. Returns the lines installed.
   */
  async batchAccepted(family: Family, lines: readonly string[]): Promise<string[]> {
    const installed: string[] = [];
    let rest = [...lines];
    while (rest.length > 0) {
      const args = ["-n", this.ns, ...(family === 6 ? ["-6"] : []), "-batch", "-"];
      const result = await runTool("ip", args, { input: `${rest.join("\n")}\n`, allowFailure: true });
      if (result.code === 0) {
        installed.push(...rest);
        break;
      }
      const m = /Command failed [^:\n]*:(\d+)/.exec(result.stderr);
      if (m === null) throw new Error(`ip batch failed: ${result.stderr.trim()}`);
      const failed = Number(m[1]);
      installed.push(...rest.slice(0, failed - 1));
      rest = rest.slice(failed);
    }
    return installed;
  }

  async writeSysctls(values: Readonly<Record<string, string>>): Promise<void> {
    const args = ["netns", "exec", this.ns, "sysctl", "-q", "-w"];
    for (const [name, value] of Object.entries(values)) args.push(`${name.replaceAll("/", ".")}=${value}`);
    await runTool("ip", args);
  }

  /** The node as symroute reads it (the lead's kernel reader, pointed at this namespace). */
  async readState(): Promise<NodeState> {
    const run: ToolRunner = (file, args, options) =>
      file === "ip"
        ? runTool("ip", ["-n", this.ns, ...args], options)
        : Promise.resolve({ code: 1, stdout: "", stderr: "not used in the lab" });
    const kernel = createLinuxKernel({ run });
    const state = await kernel.readNode({ sysctls: [], firewalls: [] });
    const names = simulatorSysctls(TOPOLOGY.devices);
    const result = await runTool(
      "ip",
      ["netns", "exec", this.ns, "sysctl", "-e", ...names.map((n) => n.replaceAll("/", "."))],
      {
        allowFailure: true,
      },
    );
    const sysctls: Record<string, string> = {};
    for (const line of result.stdout.split("\n")) {
      const m = /^(\S+) = (.*)$/.exec(line);
      if (m !== null) sysctls[(m[1] as string).replaceAll(".", "/")] = (m[2] as string).trim();
    }
    return { ...state, sysctls };
  }

  /** The kernel's answer for each packet, from one `ip -j -force -batch -`. */
  async routeGet(family: Family, packets: readonly Packet[]): Promise<KernelAnswer[]> {
    if (packets.length === 0) return [];
    const lines = packets.map((p) => routeGetArgs(p).join(" "));
    const args = ["-n", this.ns, "-j", ...(family === 6 ? ["-6"] : []), "-force", "-batch", "-"];
    const result = await runTool("ip", args, { input: `${lines.join("\n")}\n`, allowFailure: true });
    const failures = new Map<number, string>();
    let pending: string[] = [];
    for (const line of result.stderr.split("\n")) {
      const m = /^Command failed [^:]*:(\d+)$/.exec(line.trim());
      if (m !== null) {
        failures.set(
          Number(m[1]),
          pending
            .join(" ")
            .replace(/^RTNETLINK answers: /, "")
            .replace(/^Error: /, ""),
        );
        pending = [];
      } else if (line.trim() !== "") {
        pending.push(line.trim());
      }
    }
    const outputs = result.stdout.split("\n").filter((l) => l.trim() !== "");
    let next = 0;
    return packets.map((_, i) => {
      const error = failures.get(i + 1);
      if (error !== undefined) return { ok: false, error };
      const text = outputs[next++];
      if (text === undefined) return { ok: false, error: "no answer from ip" };
      const parsed = (JSON.parse(text) as Record<string, unknown>[])[0] ?? {};
      const tableText = parsed["table"];
      const answer: { ok: true; type: string; dev?: string; gateway?: string; table?: number } = {
        ok: true,
        type: typeof parsed["type"] === "string" ? parsed["type"] : "unicast",
      };
      if (typeof parsed["dev"] === "string") answer.dev = parsed["dev"];
      if (typeof parsed["gateway"] === "string") answer.gateway = parsed["gateway"];
      if (typeof tableText === "string") answer.table = TABLE_IDS[tableText] ?? Number(tableText);
      return answer;
    });
  }
}

const TABLE_IDS: Readonly<Record<string, number>> = { local: 255, main: 254, default: 253 };

const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENETUNREACH: "Network is unreachable",
  EHOSTUNREACH: "No route to host",
  EACCES: "Permission denied",
  EINVAL: "Invalid argument",
};

/** undefined when the simulator and the kernel agree; otherwise what differs. */
export function disagreement(trace: Trace, answer: KernelAnswer): string | undefined {
  const simText = (): string =>
    trace.result === "unicast" || trace.result === "local" || trace.result === "broadcast"
      ? `${trace.result} dev ${trace.dev ?? "-"} via ${trace.gateway ?? "-"} table ${trace.table ?? "-"}`
      : `${trace.result} (${trace.errno ?? "?"}: ${ERRNO_TEXT[trace.errno ?? ""] ?? "?"})`;
  const kernelText = (): string =>
    answer.ok
      ? `${answer.type} dev ${answer.dev ?? "-"} via ${answer.gateway ?? "-"} table ${answer.table ?? "(not printed)"}`
      : `error "${answer.error}"`;
  const differ = (): string => `simulator: ${simText()}; kernel: ${kernelText()}`;
  if (trace.result === "unicast" || trace.result === "local" || trace.result === "broadcast") {
    if (!answer.ok || answer.type !== trace.result) return differ();
    if (answer.dev !== trace.dev || answer.gateway !== trace.gateway) return differ();
    if (answer.table !== undefined && trace.table !== undefined && answer.table !== trace.table)
      return differ();
    return undefined;
  }
  if (answer.ok) return differ();
  return answer.error === ERRNO_TEXT[trace.errno ?? ""] ? undefined : differ();
}
