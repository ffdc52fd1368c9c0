// The one way symroute starts a process: an argument array, never a shell; C locale so that
// error texts can be classified; stdin for batch payloads.

import { spawn } from "node:child_process";
import { SymrouteError } from "../model/errors.ts";

export interface ToolResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly input?: string;
  /** Do not throw on a non-zero exit; the caller classifies the result. */
  readonly allowFailure?: boolean;
  /** Told the process id of the tool once started (the agent tells its own nft writes by it). */
  readonly onSpawn?: (pid: number) => void;
}

/** Runs `file args...`; the tool-runner seam that fakes replace in tests. */
export type ToolRunner = (file: string, args: readonly string[], options?: RunOptions) => Promise<ToolResult>;

const PACKAGE_OF: Readonly<Record<string, string>> = {
  ip: "iproute2",
  nft: "nftables",
  iptables: "iptables",
  ip6tables: "iptables",
  "iptables-save": "iptables",
  "iptables-restore": "iptables",
  "ip6tables-save": "iptables",
  "ip6tables-restore": "iptables",
  conntrack: "conntrack",
};

export const runTool: ToolRunner = (file, args, options = {}) =>
  new Promise<ToolResult>((resolve, reject) => {
    const child = spawn(file, [...args], {
      env: { ...process.env, LC_ALL: "C", LANG: "C" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    if (child.pid !== undefined) options.onSpawn?.(child.pid);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") {
        const pkg = PACKAGE_OF[file];
        reject(
          new SymrouteError("dependency", `required tool "${file}" is not installed`, {
            cause: error,
            hint:
              pkg === undefined ? undefined : `install the Debian package ${pkg} (apt-get install ${pkg})`,
          }),
        );
      } else {
        reject(new SymrouteError("kernel", `could not run ${file}: ${error.message}`, { cause: error }));
      }
    });
    child.stdin.on("error", () => {
      // EPIPE when the tool exits before reading its input: its exit status tells the story.
    });
    child.on("close", (code) => {
      const result = {
        code: code ?? 1,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      };
      if (result.code !== 0 && options.allowFailure !== true) {
        reject(toolError(file, args, result));
      } else {
        resolve(result);
      }
    });
    child.stdin.end(options.input ?? "");
  });

const PERMISSION_PATTERNS = [
  /Operation not permitted/i,
  /Permission denied/i,
  /must be root/i,
  /you must be root/i,
];

/**
 * iptables looks ipsets up over a raw socket (its set match and SET target, when writing and when
 * listing rules), which takes CAP_NET_RAW: with CAP_NET_ADMIN alone it prints this and stops.
 */
export const IPSET_SOCKET_REFUSED = /Can't open socket to ipset/;

/** A failed tool run as a SymrouteError; permission problems get their own kind and hint. */
export function toolError(file: string, args: readonly string[], result: ToolResult): SymrouteError {
  const stderr = result.stderr.trim();
  const firstLine = stderr.split("\n")[0] ?? "";
  const rawSocket = IPSET_SOCKET_REFUSED.test(stderr);
  const permission = rawSocket || PERMISSION_PATTERNS.some((p) => p.test(stderr));
  return new SymrouteError(
    permission ? "permission" : "kernel",
    `${file} ${args.join(" ")} failed (exit ${result.code})${firstLine === "" ? "" : `: ${firstLine}`}`,
    {
      details: stderr === "" ? [] : stderr.split("\n"),
      hint: rawSocket
        ? "the iptables front end's ipset rules need CAP_NET_RAW besides CAP_NET_ADMIN (iptables looks sets up over a raw socket): add NET_RAW to the capabilities, or use firewall: nftables"
        : permission
          ? "run symroute as root (or with CAP_NET_ADMIN)"
          : undefined,
    },
  );
}
