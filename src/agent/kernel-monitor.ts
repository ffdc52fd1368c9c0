// Kernel change events as reconcile triggers. `ip -o monitor rule route link address` prints one
// line per netlink notification (in both families); the lines are only a signal to re-read the node,
// never parsed as state (iproute2 6.1 prints text even with -j). Restarted with backoff if it exits.

import { spawn, type ChildProcess } from "node:child_process";
import { backoffDelay } from "./backoff.ts";
import type { Clock, TimerHandle } from "./clock.ts";

export interface KernelMonitor {
  stop(): void;
}

export interface KernelMonitorOptions {
  readonly onEvent: (line: string) => void;
  readonly onExit?: (detail: string) => void;
  readonly clock: Clock;
  /** The command; replaced in tests. */
  readonly command?: readonly [string, ...string[]];
  /** Only lines this accepts are events (default: every line). */
  readonly filter?: (line: string) => boolean;
  /** A monitor whose tool is not installed stays off instead of retrying (nft on an iptables node). */
  readonly optional?: boolean;
}

export const MONITOR_COMMAND = ["ip", "-o", "monitor", "rule", "route", "link", "address"] as const;

/** Firewall changes: nft reports every table's, so only symroute's own are kept (isSymrouteFirewallEvent). */
export const NFT_MONITOR_COMMAND = ["nft", "monitor"] as const;
/** symroute's nft table, or its iptables chains (iptables-nft changes are nft events too). */
export const isSymrouteFirewallEvent = (line: string): boolean =>
  / inet symroute\b/.test(line) || /\bSYMROUTE-(PRE|OUT)\b/.test(line);

export function startKernelMonitor(options: KernelMonitorOptions): KernelMonitor {
  const [file, ...args] = options.command ?? MONITOR_COMMAND;
  let child: ChildProcess | undefined;
  let restart: TimerHandle | undefined;
  let stopped = false;
  let failures = 0;

  const launch = (): void => {
    const startedAt = options.clock.now();
    const proc = spawn(file, args, {
      env: { ...process.env, LC_ALL: "C", LANG: "C" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = proc;
    let pending = "";
    let stderr = "";
    proc.stdout?.setEncoding("utf8");
    proc.stdout?.on("data", (chunk: string) => {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        if (line.trim() !== "" && (options.filter === undefined || options.filter(line)))
          options.onEvent(line);
      }
    });
    proc.stderr?.setEncoding("utf8");
    proc.stderr?.on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-2_000);
    });
    const onGone = (detail: string): void => {
      if (child !== proc) return;
      child = undefined;
      if (stopped) return;
      // A monitor that ran for a while before dying starts a fresh backoff sequence.
      failures = options.clock.now() - startedAt > 60_000 ? 1 : failures + 1;
      options.onExit?.(detail);
      restart = options.clock.after(backoffDelay(failures, { initialMs: 500, maxMs: 30_000 }), launch);
    };
    proc.on("error", (error: NodeJS.ErrnoException) => {
      if (options.optional === true && error.code === "ENOENT") {
        child = undefined;
        stopped = true;
        return;
      }
      onGone(`${file} could not start: ${error.message}`);
    });
    proc.on("exit", (code, signal) =>
      onGone(
        `${file} exited (${signal ?? `code ${code}`})${stderr.trim() === "" ? "" : `: ${stderr.trim()}`}`,
      ),
    );
  };

  launch();
  return {
    stop() {
      stopped = true;
      restart?.cancel();
      child?.kill("SIGTERM");
      child = undefined;
    },
  };
}

/**
 * The agent's kernel triggers: routing changes (`ip monitor`) and, where nft exists, changes to
 * symroute's own firewall objects (a table deleted by hand is repaired at once, not at the resync).
 */
export function watchKernel(options: {
  readonly clock: Clock;
  readonly onEvent: () => void;
  /** A monitor stopped (it is restarted with backoff): `source` names which, for the metrics. */
  readonly onExit: (source: "kernel-monitor" | "firewall-monitor", detail: string) => void;
}): KernelMonitor {
  const routing = startKernelMonitor({
    clock: options.clock,
    onEvent: options.onEvent,
    onExit: (detail) => options.onExit("kernel-monitor", detail),
  });
  const firewall = startKernelMonitor({
    clock: options.clock,
    command: NFT_MONITOR_COMMAND,
    filter: isSymrouteFirewallEvent,
    optional: true,
    onEvent: options.onEvent,
    onExit: (detail) => options.onExit("firewall-monitor", detail),
  });
  return {
    stop() {
      routing.stop();
      firewall.stop();
    },
  };
}
