// Kernel change events as reconcile triggers. `ip -o -ts monitor label rule route link address
// netconf` prints one line per netlink notification (in both families), stamped with the time ip
// received it (the agent's read cache compares it with its reads: read-cache.ts) and prefixed
// [RULE], [ROUTE], [LINK], [ADDR] or [NETCONF] (of the sysctls symroute sets, the kernel reports
// rp_filter's changes, not arp_announce's or arp_ignore's: measured);
// the lines are only a signal to re-read the node, never parsed as state (iproute2 6.1 prints text
// even with -j), except to drop the events of links symroute has nothing to do with (a pod's veth
// coming and going: kernelEventConcerns). Restarted with backoff if it exits.

import { spawn, type ChildProcess } from "node:child_process";
import { backoffDelay } from "./backoff.ts";
import type { Clock, TimerHandle } from "./clock.ts";
import { LineSplitter } from "./lines.ts";
import { interfaceLine, splitStamp } from "./read-cache.ts";

export interface KernelMonitor {
  stop(): void;
}

export interface KernelMonitorOptions {
  /**
   * A line; `live` is false for a line read after the monitor's exit was seen (Node may report a
   * child's exit before the last of its output): a change, but no proof that a monitor listens.
   */
  readonly onEvent: (line: string, live: boolean) => void;
  readonly onExit?: (detail: string) => void;
  /**
   * A monitor restarted after an exit is running again: what changed while it was down came with
   * no line, so the node must be read afresh (the agent reconciles).
   */
  readonly onRestart?: () => void;
  /**
   * The monitor, still running, says it lost notifications (its netlink socket's buffer overflowed
   * while it was not reading: LOST_EVENTS): what changed in that time came with no line.
   */
  readonly onLost?: (detail: string) => void;
  readonly clock: Clock;
  /** The command; replaced in tests. */
  readonly command?: readonly [string, ...string[]];
  /** Only lines this accepts are events (default: every line). */
  readonly filter?: (line: string) => boolean;
  /** A monitor whose tool is not installed stays off instead of retrying (nft on an iptables node). */
  readonly optional?: boolean;
}

const MONITOR_COMMAND = [
  "ip",
  "-o",
  "-ts",
  "monitor",
  "label",
  "rule",
  "route",
  "link",
  "address",
  "netconf",
] as const;

/**
 * Whether a line of MONITOR_COMMAND can change what a reconcile does, given the interfaces the
 * configuration in force names (each network's interface and VLAN parent) and those whose
 * rp_filter symroute owns besides (owned-sysctls.ts). What the plan reads
 * from the node: every rule; routes in tables other than main and local (symroute's tables, and
 * foreign routes there are conflicts); main's default routes (how replies leave today); routes,
 * links and addresses of the named interfaces; rp_filter of conf.all, conf.default, the named
 * interfaces and the owned ones. Everything else (a pod's veth, its addresses, its
 * routes in main and local) is dropped: the periodic resync still re-reads the whole node. A link
 * created later inherits `conf.default.rp_filter`, which symroute sets when it lowers `conf.all`.
 */
export function kernelEventConcerns(
  line: string,
  interfaces: ReadonlySet<string>,
  rpFilterOwned: ReadonlySet<string> = new Set(),
): boolean {
  const link = interfaceLine(line);
  // A line of another form than expected: better a reconcile too many than a missed drift.
  if (link !== undefined) return link.name === undefined || interfaces.has(link.name);
  const label = /^\[([A-Z]+)\]/.exec(line)?.[1];
  const body = line.slice(label === undefined ? 0 : label.length + 2).replace(/^Deleted /, "");
  if (label === "NETCONF") {
    // "inet ext0 rp_filter strict": one setting changed (a link's first event lists every setting,
    // a pod's veth coming, and is dropped). Only rp_filter of conf.all, conf.default, the named
    // interfaces (a change there can drop every request, KERNEL-FACTS 5) and the other interfaces
    // whose rp_filter symroute owns (raised when it lowered conf.all: their anti-spoofing).
    const name = /^inet (\S+) rp_filter \S+\s*$/.exec(body)?.[1];
    return (
      name !== undefined &&
      (name === "all" || name === "default" || interfaces.has(name) || rpFilterOwned.has(name))
    );
  }
  if (label === "ROUTE") {
    const dev = /(?:^|\s)dev (\S+)/.exec(body)?.[1];
    if (dev === undefined || interfaces.has(dev)) return true;
    const table = /(?:^|\s)table (\S+)/.exec(body)?.[1];
    if (table === "local") return false;
    if (table !== undefined && table !== "main") return true;
    // main: its default routes only ("default ...", "unreachable default ...").
    return /^(?:[a-z]+ )?default\b/.test(body);
  }
  // [RULE], and anything unlabelled or unknown: better a reconcile too many than a missed drift.
  return true;
}

/**
 * Whether a line says that one of the named interfaces changed (a link or an address event): a
 * pool's interface that comes back after it was deleted (a VLAN the network manager re-creates)
 * comes with conf.default's rp_filter, which drops every request on it until the agent repairs it
 * (KERNEL-FACTS 5), so such a line cuts the failures' backoff short rather than wait up to 30 s.
 */
export function kernelEventResetsBackoff(line: string, interfaces: ReadonlySet<string>): boolean {
  const name = interfaceLine(line)?.name;
  return name !== undefined && interfaces.has(name);
}

/** Firewall changes: nft reports every table's, so only symroute's own are kept (isSymrouteFirewallEvent). */
const NFT_MONITOR_COMMAND = ["nft", "monitor"] as const;
/**
 * symroute's nft tables (`inet symroute`; `netdev symroute`, the guards; `arp symroute`, the ARP
 * probes of either front end), its iptables chains and the rules in mangle's PREROUTING and OUTPUT
 * that jump to them (every name starts with SYMROUTE-: -PRE, -OUT, -CLASSIFY, -G-IF, and -NEW and
 * -GUARD of the layouts before, which an apply removes; iptables-nft changes are nft events too),
 * and a rule deleted from mangle's PREROUTING or OUTPUT: nft names a deleted rule by its handle
 * only, and it may be one of symroute's (a reconcile too many is cheaper than a missed drift).
 */
export const isSymrouteFirewallEvent = (line: string): boolean =>
  / (?:inet|netdev|arp) symroute\b/.test(line) ||
  /\bSYMROUTE-/.test(line) ||
  /^delete rule ip6? mangle (?:PREROUTING|OUTPUT) /.test(line);

/**
 * How the monitors say that the kernel dropped notifications (ENOBUFS: the socket's receive buffer
 * overflowed, a monitor starved of CPU under a burst of changes), and keep running: iproute2 6.1's
 * `ip monitor` on stderr, `netlink receive error No buffer space available (105)`; nft 1.0.6's
 * `nft monitor` on stdout, `# ERROR: We lost some netlink events!` (measured: the monitor stopped
 * with SIGSTOP, 20,000 routes or 60,000 nft rules added, then one more change: it is not printed).
 */
export const LOST_EVENTS = /^(?:netlink receive error|# ERROR: We lost some netlink events)/;

export function startKernelMonitor(options: KernelMonitorOptions): KernelMonitor {
  const [file, ...args] = options.command ?? MONITOR_COMMAND;
  let child: ChildProcess | undefined;
  let restart: TimerHandle | undefined;
  let stopped = false;
  let failures = 0;

  const launch = (restarted = false): void => {
    const startedAt = options.clock.now();
    const proc = spawn(file, args, {
      // ip stamps its lines in local time: UTC, so that the read cache can compare them.
      env: { ...process.env, LC_ALL: "C", LANG: "C", TZ: "UTC" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = proc;
    if (restarted)
      proc.on("spawn", () => {
        if (child === proc && !stopped) options.onRestart?.();
      });
    const lines = new LineSplitter();
    const errorLines = new LineSplitter();
    let stderr = "";
    proc.stdout?.setEncoding("utf8");
    proc.stdout?.on("data", (chunk: string) => {
      for (const line of lines.push(chunk)) {
        if (LOST_EVENTS.test(line)) options.onLost?.(line);
        else if (line.trim() !== "" && (options.filter === undefined || options.filter(line)))
          options.onEvent(line, child === proc);
      }
    });
    proc.stderr?.setEncoding("utf8");
    proc.stderr?.on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-2_000);
      for (const line of errorLines.push(chunk)) if (LOST_EVENTS.test(line)) options.onLost?.(line);
    });
    const onGone = (detail: string): void => {
      if (child !== proc) return;
      child = undefined;
      if (stopped) return;
      // A monitor that ran for a while before dying starts a fresh backoff sequence.
      failures = options.clock.now() - startedAt > 60_000 ? 1 : failures + 1;
      options.onExit?.(detail);
      restart = options.clock.after(backoffDelay(failures, { initialMs: 500, maxMs: 30_000 }), () =>
        launch(true),
      );
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
  /** A line that asks for a reconcile (the routing monitor's without ip's stamp). */
  readonly onEvent: (line: string) => void;
  /** Routing events that cannot change a reconcile (kernelEventConcerns); told, not acted on. */
  readonly relevant?: (line: string) => boolean;
  readonly onIgnored?: () => void;
  /** A monitor stopped (it is restarted with backoff): `source` names which, for the metrics. */
  readonly onExit: (source: "kernel-monitor" | "firewall-monitor", detail: string) => void;
  /** A stopped monitor runs again: what changed while it was down came with no line. */
  readonly onRestart?: (source: "kernel-monitor" | "firewall-monitor") => void;
  /** A running monitor lost notifications (LOST_EVENTS): what changed then came with no line. */
  readonly onLost?: (source: "kernel-monitor" | "firewall-monitor", detail: string) => void;
  /** Every line of each monitor as it came, before any filter (the read cache's evidence). */
  readonly onRoutingLine?: (line: string, live: boolean) => void;
  readonly onFirewallLine?: (line: string, live: boolean) => void;
}): KernelMonitor {
  const routing = startKernelMonitor({
    clock: options.clock,
    onEvent: (line, live) => {
      options.onRoutingLine?.(line, live);
      const { event } = splitStamp(line);
      if (options.relevant === undefined || options.relevant(event)) options.onEvent(event);
      else options.onIgnored?.();
    },
    onExit: (detail) => options.onExit("kernel-monitor", detail),
    onRestart: () => options.onRestart?.("kernel-monitor"),
    onLost: (detail) => options.onLost?.("kernel-monitor", detail),
  });
  const firewall = startKernelMonitor({
    clock: options.clock,
    command: NFT_MONITOR_COMMAND,
    optional: true,
    onEvent: (line, live) => {
      options.onFirewallLine?.(line, live);
      if (isSymrouteFirewallEvent(line)) options.onEvent(line);
    },
    onExit: (detail) => options.onExit("firewall-monitor", detail),
    onRestart: () => options.onRestart?.("firewall-monitor"),
    onLost: (detail) => options.onLost?.("firewall-monitor", detail),
  });
  return {
    stop() {
      routing.stop();
      firewall.stop();
    },
  };
}
