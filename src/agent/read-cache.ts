// What the agent last read of the node, reused by the next reconcile while nothing has changed in
// the kernel since: at 1,000 networks the reads before a plan cost more than the change itself
// (docs/agent.md, "Warm reconcile"). It sits behind the engine's Kernel port (wrap), so that the
// engine and the one-shot CLI read as before.
//
// A kept read is good only while the kernel monitors prove that nothing changed after it started:
// - routing (`ip -ts monitor`): every line carries the time ip received it, which is after the
//   change; a line stamped after a read's start may be a change the read missed. The agent's own
//   writes are stamped before the read that followed them (verification reads after writing), so
//   they cost nothing; one ip received late only costs a full read.
// - firewall (`nft monitor`): each transaction ends with `# new generation N by process PID`; the
//   agent knows the process ids of the tools it started, anything else is foreign.
// - a monitor that is not running, or has not yet shown a line since it started (so may not be
//   listening yet), keeps nothing valid; the agent's own writes drop what they change. One
//   exception: nft's monitor printing the agent's own transaction on symroute's tables proves it
//   listened from that commit on, and a whole-table transaction leaves the tables as its script
//   says whatever came before its commit, so the first change after a start can be partial.
// The reconciler forgets everything on start, on the periodic resync and after any failure, so
// that those always read the node in full.

import { performance } from "node:perf_hooks";
import { readSysctlFile } from "../adapters/kernel.ts";
import type { Family } from "../model/address.ts";
import {
  TABLE_DEFAULT,
  TABLE_LOCAL,
  TABLE_MAIN,
  type DatapathTraces,
  type KubeProxyHints,
  type NodeState,
  type OwnedFirewall,
} from "../model/state.ts";
import { BatchError, type Kernel, type ReadScope } from "../engine/ports.ts";
import { renderNftIncremental, rewrittenChains } from "../render/nft-incremental.ts";
import {
  asListed,
  chainsToList,
  composeListing,
  listingByChain,
  printedByChain,
  printedChain,
  scriptChains,
  type ListedRule,
  type PrintedChain,
  type ScriptChain,
} from "./nft-chains.ts";

export type MonitorName = "routing" | "firewall";

type KeptRouting = Kept<Omit<NodeState, "firewall" | "kubeProxy" | "datapath">>;

/**
 * How the agent's nft transaction ran: `partial` (only the chains that changed: the table was known
 * to be as its previous transaction left it), `full` (the tables replaced whole), `partial-refused`
 * (nft refused the partial one, which changed nothing; the whole-table one ran after it).
 */
export type NftTransactionKind = "partial" | "full" | "partial-refused";

/**
 * Where a read came from: kept, the kernel in full, only the nft chains the agent changed, or the
 * kernel for the route tables the agent's writes (and other lines since) named, the rest kept.
 */
export type ReadFrom = "cache" | "kernel" | "chains" | "tables";

/**
 * What a kept read depends on: every routing line, the routing monitor's [LINK] lines, nft's lines
 * about symroute's tables (`firewall`) or about any other (`others`: kube-proxy's traces).
 */
type Evidence = "routing" | "links" | "firewall" | "others";

interface Kept<T> {
  readonly value: T;
  /** Wall clock (ms) when the read started: compared with ip's stamps. */
  readonly wallStart: number;
  /** Monotonic (ms) when the read started: compared with when lines arrived. */
  readonly monoStart: number;
  /**
   * A routing read whose routes outside `tables` and rules outside `priorities` were taken from an
   * older read (#composable): as of `since` (ip's wall clock), so that any line about them stamped
   * after it makes this read stale.
   */
  readonly composed?: ComposedRead;
}

/** What a composed routing read took from the kernel (`tables`, `priorities`), and as of when the rest. */
interface ComposedRead {
  readonly since: number;
  readonly tables: ReadonlySet<number>;
  readonly priorities: ReadonlySet<number>;
}

/** Route tables `ip monitor` names by name (`main` it leaves out). */
const NAMED_TABLES: Readonly<Record<string, number>> = {
  default: TABLE_DEFAULT,
  main: TABLE_MAIN,
  local: TABLE_LOCAL,
};
/**
 * More route tables, or more rule priorities, to read than this after a write (one command each),
 * and everything is read instead (networks added by the hundred: one read of all is as cheap).
 */
const MAX_TARGETED_READS = 64;

/**
 * The table a routing monitor line's route is in (`[ROUTE]... table N ...`; none written: main);
 * undefined for any other line, or a table named otherwise.
 */
export function routeLineTable(event: string): number | undefined {
  if (!event.startsWith("[ROUTE]")) return undefined;
  const name = /\stable (\S+)/.exec(event)?.[1];
  if (name === undefined) return TABLE_MAIN;
  if (/^\d+$/.test(name)) return Number(name);
  return NAMED_TABLES[name];
}

/**
 * The interface a routing monitor line about a link or an address names (`[LINK]5: ext0@if4: <...>`,
 * `[ADDR]Deleted 5: ext0    inet 1.2.3.4/24 ...`), and which of the two the line is about; undefined
 * for any other line. `name` is undefined when the line does not have the usual form.
 */
export function interfaceLine(
  event: string,
): { readonly label: "LINK" | "ADDR"; readonly name: string | undefined } | undefined {
  const m = /^\[(LINK|ADDR)\](?:Deleted )?(.*)$/s.exec(event);
  if (m === null) return undefined;
  return { label: m[1] as "LINK" | "ADDR", name: /^\d+: ([^\s:@]+)/.exec(m[2] as string)?.[1] };
}

/** The priority of a routing monitor line's rule (`[RULE]1000:\t...`); undefined for any other line. */
export function ruleLinePriority(event: string): number | undefined {
  const m = /^\[RULE\](?:Deleted )?(\d+):/.exec(event);
  return m === null ? undefined : Number(m[1]);
}

/** What an `ip -batch` of the agent's changes: route tables and rule priorities. */
export interface BatchTargets {
  readonly tables: ReadonlySet<number>;
  readonly priorities: ReadonlySet<number>;
}

/**
 * The route tables and rule priorities an `ip -batch` of the agent's names (`route ... table N`,
 * `rule ... priority N`); undefined when a line names neither, or may change routes elsewhere (a
 * link or an address: the kernel drops IPv4 routes through them without an event).
 */
export function batchTargets(lines: readonly string[]): BatchTargets | undefined {
  const tables = new Set<number>();
  const priorities = new Set<number>();
  const numberAfter = (words: readonly string[], names: readonly string[]): number | undefined => {
    const at = words.findIndex((w) => names.includes(w));
    const value = at < 0 ? undefined : words[at + 1];
    return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
  };
  for (const line of lines) {
    const words = line.trim().split(/\s+/);
    const kind = words[0];
    const target =
      kind === "route"
        ? numberAfter(words, ["table"])
        : kind === "rule"
          ? numberAfter(words, ["priority", "pref", "preference"])
          : undefined;
    if (target === undefined) return undefined;
    (kind === "route" ? tables : priorities).add(target);
  }
  return { tables, priorities };
}

/** `[2026-12-07T00:06:09.601195] [RULE]...` as `ip -ts` prints it (UTC: the monitor runs with TZ=UTC). */
const STAMP = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{1,9})\] /;

/** A routing monitor line split into ip's stamp (wall ms; undefined when absent) and the event. */
export function splitStamp(line: string): { readonly at: number | undefined; readonly event: string } {
  const m = STAMP.exec(line);
  if (m === null) return { at: undefined, event: line };
  const seconds = Date.parse(`${m[1] ?? ""}Z`);
  const fraction = Number(`0.${m[2] ?? "0"}`);
  return {
    at: Number.isFinite(seconds) ? seconds + fraction * 1000 : undefined,
    event: line.slice(m[0].length),
  };
}

/** The process id in nft monitor's `# new generation N by process PID (comm)`; undefined for other lines. */
export function generationProcess(line: string): number | "unknown" | undefined {
  if (!line.startsWith("# new generation ")) return undefined;
  const m = / by process (\d+)/.exec(line);
  return m === null ? "unknown" : Number(m[1]);
}

export interface ReadCacheOptions {
  /** Root of the sysctl tree (the same as the kernel adapter's): sysctls are always read afresh. */
  readonly procSys?: string;
  /** Reads one sysctl (undefined: absent); default: the file under `procSys`. Tests replace it. */
  readonly readSysctl?: (name: string) => Promise<string | undefined>;
  /** Told of every read a reconcile asks for: served from what was kept, or from the kernel. */
  readonly onRead?: (from: ReadFrom) => void;
  /**
   * Lists one chain of symroute's `inet` or `arp` table (`nft -t list chain`): with it, the read
   * after the agent's own whole-table transaction lists only the chains whose text changed
   * (nft-chains.ts).
   */
  readonly listNftChain?: (family: ScriptChain["family"], chain: string) => Promise<readonly ListedRule[]>;
  /**
   * Told of every chain verification took after one of the agent's nft transactions: from what
   * nft's monitor printed of it, or listed (`nft -t list chain`).
   */
  readonly onChainFrom?: (from: "monitor" | "listed") => void;
  /** Told of every nft transaction of the agent's own: partial or whole-table. */
  readonly onNftTransaction?: (kind: NftTransactionKind) => void;
  /** The monotonic clock (ms); tests replace it. */
  readonly now?: () => number;
  /** The wall clock (ms), the clock ip stamps its lines with; tests replace it. */
  readonly wallNow?: () => number;
  /** Runs `fire` after `ms` (returns its cancel): the waits for nft's monitor; tests replace it. */
  readonly timer?: (ms: number, fire: () => void) => () => void;
}

/**
 * How far the wall clock may go back against the monotonic one (a step: NTP, chrony's makestep, a
 * VM's clock set) before the kept reads stop counting: a change ip stamps after such a step can be
 * stamped before a read that started earlier and missed it. Below this, the window of changes that
 * could be missed is that short; a slew moves the clocks apart by at most 0.5 ms a second.
 */
export const WALL_CLOCK_STEP_MS = 50;

/** The agent's last nft transaction, split by chain, and what was kept when it started. */
interface Transaction {
  readonly chains: ReadonlyMap<string, ScriptChain>;
  /**
   * The chains it made anew (a partial transaction: those it flushed and filled or added; a
   * whole-table one: all), and how nft's monitor printed it.
   */
  readonly printed?: {
    readonly rewritten: ReadonlySet<string>;
    readonly run: PrintedRun;
    /** A whole-table transaction: the tables hold nothing else. */
    readonly whole: boolean;
  };
  /** The chains of the transaction the kept listing followed, and that listing by chain. */
  readonly basis?: FirewallBasis;
  readonly startMono: number;
  /** The firewall epoch once it ended: another write since makes it no basis for a listing. */
  readonly epoch: number;
}

/**
 * One of the agent's nft transactions as `nft monitor` prints it: the nft processes started while
 * it ran (one of them is its own), and once its generation line came, its `add rule` and `add
 * chain` lines on symroute's tables.
 */
interface PrintedRun {
  readonly pids: Set<number>;
  running: boolean;
  printed: readonly string[] | undefined;
  readonly waiters: (() => void)[];
}

interface FirewallBasis {
  readonly chains: ReadonlyMap<string, ScriptChain>;
  readonly listed: ReadonlyMap<string, readonly string[]>;
}

export class ReadCache {
  readonly #readSysctl: (name: string) => Promise<string | undefined>;
  readonly #onRead: (from: ReadFrom) => void;
  /** When each monitor's first line since it (re)started arrived (monotonic); undefined: not proven. */
  readonly #liveSince: Record<MonitorName, number | undefined> = { routing: undefined, firewall: undefined };
  /** ip's stamp (wall ms) of the latest routing event, and of the latest about a link. */
  #latestRoutingEvent = -Infinity;
  #latestLinkEvent = -Infinity;
  /**
   * The latest [LINK] line of an interface symroute's netdev chains may hook (ip's stamp). A
   * kernel that drops a base chain with its device does it without an nft event (Linux 6.18 keeps
   * the chain and hooks the device created again under its name: measured, test/agent/
   * interface-recreate.e2e.test.ts): only the link's event can tell the firewall read is stale.
   */
  #latestHookedLinkEvent = -Infinity;
  /**
   * ip's stamp of the latest [ROUTE] line per table it names, of the latest [RULE] line per
   * priority, and of the latest line that is neither (a link's or an address's can drop routes in
   * any table without a route event): what a read composed by table and priority depends on.
   */
  readonly #latestRouteEventOf = new Map<number, number>();
  readonly #latestRuleEventOf = new Map<number, number>();
  #latestUntabledEvent = -Infinity;
  /**
   * The routing read the agent's routing writes dropped (it was good then), and the route tables
   * and rule priorities those writes named since (undefined: a write that may change routes
   * anywhere): the verification after them reads only those tables' routes and those priorities'
   * rules, and those named by lines since, and takes the others from it (#composable).
   */
  #routingBasis:
    | { readonly read: KeptRouting; written: { tables: Set<number>; priorities: Set<number> } | undefined }
    | undefined;
  #hookedInterfaces: () => ReadonlySet<string> | undefined = () => undefined;
  /**
   * When the generation line of the latest foreign nft transaction arrived (monotonic): one whose
   * lines named symroute's tables (`ours`; `nft monitor` prints a line per object a transaction
   * changes, a `flush ruleset` too), and one whose lines named any other table (`others`:
   * kube-proxy's). A transaction whose lines did not come (none, or lost) counts as both.
   */
  readonly #foreignAt = { ours: -Infinity, others: -Infinity };
  /**
   * The nft transaction whose lines came but whose generation line (whose process) has not yet:
   * when its first line came, and which tables its lines named.
   */
  #pending: { since: number; ours: boolean; others: boolean; rules: string[] } | undefined;
  /** The agent's latest nft transaction, until its printing came (or the next one). */
  #printing: PrintedRun | undefined;
  /**
   * When nft's monitor, since it (re)started, last printed a transaction of the agent's own that
   * named symroute's tables (monotonic): it was listening at that transaction's commit.
   */
  #ownSeenAt: number | undefined;
  /**
   * The tools the kernel adapter started in the last OWN_PROCESS_MS (their nft transactions are
   * the agent's own), with when: process ids come round again (pid_max is 32768 here), so an old
   * one may be another process's by now.
   */
  readonly #ownProcesses = new Map<number, number>();
  #routing: KeptRouting | undefined;
  #kubeProxy: Kept<Omit<KubeProxyHints, "ipvsLink">> | undefined;
  /** The datapath's traces for the interfaces in `key` (undefined value: the reader gave none). */
  #datapath: (Kept<DatapathTraces | undefined> & { readonly key: string }) | undefined;
  /** The firewall as last read; `basis` when it was read right after one of the agent's transactions. */
  #firewall: (Kept<readonly OwnedFirewall[]> & { readonly basis?: FirewallBasis }) | undefined;
  #transaction: Transaction | undefined;
  /**
   * The chains symroute's nft tables hold: those of the agent's last whole-table script, which ran
   * (whole or as a partial transaction) with no other firewall write since. `verified` once the
   * reconcile that ran it verified the node: only then is the next transaction a partial one.
   */
  #table:
    (Kept<ReadonlyMap<string, ScriptChain>> & { readonly epoch: number; verified: boolean }) | undefined;
  /**
   * What the reads since the last `verified` or `forget` depended on (`passThrough`: one the cache
   * cannot keep, such as the iptables front end's or the neighbours), and the same for the reads of
   * the reconcile that last verified the node (undefined: none since the last `forget`).
   */
  #reads: ReadsMade = { ...NO_READS };
  #settled: ReadsMade | undefined;
  /** How the first nft transaction since the last `takeNftTransaction` ran. */
  #nftTransaction: NftTransactionKind | undefined;
  readonly #onNftTransaction: (kind: NftTransactionKind) => void;
  readonly #onChainFrom: (from: "monitor" | "listed") => void;
  readonly #listNftChain: ReadCacheOptions["listNftChain"];
  readonly #now: () => number;
  readonly #wallNow: () => number;
  readonly #timer: NonNullable<ReadCacheOptions["timer"]>;
  /** Lines of `nft monitor` about symroute's tables read so far: whether a printing is still coming. */
  #symrouteLines = 0;
  /**
   * Per domain: the writes under way, and an epoch bumped by every write (at its start and its
   * end): a read that saw one is not kept.
   */
  readonly #writes: Record<MonitorName, { running: number; epoch: number }> = {
    routing: { running: 0, epoch: 0 },
    firewall: { running: 0, epoch: 0 },
  };

  constructor(options: ReadCacheOptions = {}) {
    const procSys = options.procSys ?? "/proc/sys";
    this.#readSysctl = options.readSysctl ?? (async (name) => readSysctlFile(procSys, name));
    this.#onRead = options.onRead ?? (() => undefined);
    this.#listNftChain = options.listNftChain;
    this.#onNftTransaction = options.onNftTransaction ?? (() => undefined);
    this.#onChainFrom = options.onChainFrom ?? (() => undefined);
    this.#now = options.now ?? (() => performance.now());
    this.#wallNow = options.wallNow ?? (() => Date.now());
    this.#timer =
      options.timer ??
      ((ms, fire) => {
        const handle = setTimeout(fire, ms);
        return () => clearTimeout(handle);
      });
  }

  /**
   * The interfaces symroute's nft base chains may hook at ingress (the configuration's; undefined,
   * and until this is called: any link): a link event of one of them makes the kept firewall read
   * stale.
   */
  watchHookedInterfaces(interfaces: () => ReadonlySet<string> | undefined): void {
    this.#hookedInterfaces = interfaces;
  }

  /** A tool the kernel adapter started. */
  ownProcess(pid: number): void {
    this.#forgetOldProcesses();
    // A process id seen again goes last: the map stays in the order the tools were started.
    this.#ownProcesses.delete(pid);
    this.#ownProcesses.set(pid, this.#now());
    if (this.#printing?.running === true) this.#printing.pids.add(pid);
  }

  /**
   * A line of the routing monitor (`ip -o -ts monitor`), relevant or not; `live`: false for one read
   * after the monitor's exit was seen.
   */
  routingLine(line: string, live = true): void {
    // A line of a monitor already gone (read after its exit) is a change, not a sign of listening.
    if (live) this.#liveSince.routing ??= this.#now();
    // No stamp: the line's arrival is after the change too.
    const { at = this.#wallNow(), event } = splitStamp(line);
    if (at > this.#latestRoutingEvent) this.#latestRoutingEvent = at;
    const table = routeLineTable(event);
    const priority = table === undefined ? ruleLinePriority(event) : undefined;
    if (table !== undefined) {
      if (at > (this.#latestRouteEventOf.get(table) ?? -Infinity)) this.#latestRouteEventOf.set(table, at);
    } else if (priority !== undefined) {
      if (at > (this.#latestRuleEventOf.get(priority) ?? -Infinity))
        this.#latestRuleEventOf.set(priority, at);
    } else if (at > this.#latestUntabledEvent) this.#latestUntabledEvent = at;
    if (event.startsWith("[LINK]") && at > this.#latestLinkEvent) this.#latestLinkEvent = at;
    const link = interfaceLine(event);
    if (link?.label === "LINK" && at > this.#latestHookedLinkEvent) {
      const { name } = link;
      const hooked = this.#hookedInterfaces();
      if (name === undefined || hooked === undefined || hooked.has(name)) this.#latestHookedLinkEvent = at;
    }
  }

  /** A line of `nft monitor`, whatever table it names. */
  firewallLine(line: string, live = true): void {
    if (live) this.#liveSince.firewall ??= this.#now();
    const pid = generationProcess(line);
    const pending = this.#pending;
    if (pid === undefined) {
      this.#pending ??= { since: this.#now(), ours: false, others: false, rules: [] };
      if (/ symroute\b/.test(line)) {
        this.#symrouteLines++;
        this.#pending.ours = true;
        // Kept only while a transaction of the agent's waits for its printing.
        if (this.#printing !== undefined && this.#printing.printed === undefined) {
          if (line.startsWith("add rule ") || line.startsWith("add chain ")) this.#pending.rules.push(line);
          else if (line.startsWith("delete table ")) {
            // What the transaction added to that table before deleting it is not in it.
            const family = line.split(" ")[2];
            const pending = this.#pending;
            pending.rules = pending.rules.filter((l) => l.split(" ", 3)[2] !== family);
          }
        }
      } else this.#pending.others = true;
      return;
    }
    this.#pending = undefined;
    this.#forgetOldProcesses();
    if (pid !== "unknown" && this.#ownProcesses.has(pid)) {
      if (pending?.ours === true) this.#ownSeenAt = this.#now();
      const printing = this.#printing;
      if (printing !== undefined && printing.printed === undefined && printing.pids.has(pid)) {
        printing.printed = pending?.rules ?? [];
        for (const wake of printing.waiters.splice(0)) wake();
      }
      return;
    }
    if (pending?.ours !== false) this.#foreignAt.ours = this.#now();
    if (pending?.others !== false) this.#foreignAt.others = this.#now();
  }

  #forgetOldProcesses(): void {
    const oldest = this.#now() - OWN_PROCESS_MS;
    for (const [pid, at] of this.#ownProcesses) {
      // In the order they were started: the first recent one ends the search.
      if (at >= oldest) break;
      this.#ownProcesses.delete(pid);
    }
  }

  /**
   * A monitor stopped, or lost lines (its buffer overflowed): until it shows a line again, nothing
   * it watches can be trusted.
   */
  monitorDown(which: MonitorName): void {
    this.#liveSince[which] = undefined;
    if (which === "firewall") {
      // A transaction whose generation line never came (lost with the monitor's lines): not
      // taken as part of the next one's.
      this.#pending = undefined;
      this.#ownSeenAt = undefined;
      // Its lines may be lost with it: the changed chains are listed.
      this.#dropPrinting();
    }
  }

  #dropPrinting(): void {
    const printing = this.#printing;
    this.#printing = undefined;
    if (printing !== undefined) for (const wake of printing.waiters.splice(0)) wake();
  }

  /** The next reads go to the kernel (start, resync, a failure). */
  forget(): void {
    this.#dropPrinting();
    this.#routing = undefined;
    this.#routingBasis = undefined;
    this.#kubeProxy = undefined;
    this.#datapath = undefined;
    this.#firewall = undefined;
    this.#transaction = undefined;
    this.#table = undefined;
    this.#reads = { ...NO_READS };
    this.#settled = undefined;
  }

  /**
   * The reconcile that ran the agent's last nft transaction verified the node (and no firewall
   * write came after it): the next transaction may change only what differs from it.
   */
  verified(): void {
    if (this.#table !== undefined && this.#table.epoch === this.#writes.firewall.epoch)
      this.#table.verified = true;
    this.#settled = this.#reads;
    this.#reads = { ...NO_READS };
  }

  /**
   * Whether nothing a reconcile reads can have changed since the last one verified the node with
   * the same configuration: every read it made is kept and still good (the agent's own writes since
   * would have dropped them; another process's change, or a monitor that stopped, makes them
   * stale). Then a reconcile triggered only by the agent's own apply's kernel events would plan
   * nothing (the sysctls, which no monitor shows, are read only by a reconcile that runs).
   */
  unchanged(): boolean {
    const settled = this.#settled;
    if (settled === undefined || settled.passThrough) return false;
    if (this.#writes.routing.running > 0 || this.#writes.firewall.running > 0) return false;
    const good = (kept: Kept<unknown> | undefined, dependsOn: readonly Evidence[]): boolean =>
      kept !== undefined && this.#valid(kept, dependsOn);
    return (
      good(this.#routing, ["routing"]) &&
      (!settled.firewall || good(this.#firewall, ["firewall"])) &&
      (!settled.kubeProxy || good(this.#kubeProxy, ["others"])) &&
      (!settled.datapath || good(this.#datapath, ["links", "others"]))
    );
  }

  /** How the first nft transaction since the last call ran (undefined: none ran). */
  takeNftTransaction(): NftTransactionKind | undefined {
    const kind = this.#nftTransaction;
    this.#nftTransaction = undefined;
    return kind;
  }

  /**
   * The partial transaction from the tables as known to `next` (render/nft-incremental.ts), when the
   * tables are surely as the agent's last transaction left them: it was verified, no firewall write
   * since, and the monitor showed no other process's nft transaction since it started (a resync or
   * a failure forgot it), and it is shorter than the whole-table script. Undefined: the whole-table
   * transaction.
   */
  #partialTransaction(next: ReadonlyMap<string, ScriptChain>, wholeLength: number): string | undefined {
    const known = this.#table;
    if (
      known === undefined ||
      !known.verified ||
      this.#writes.firewall.running > 0 ||
      known.epoch !== this.#writes.firewall.epoch ||
      !(this.#valid(known, ["firewall"]) || this.#seenListening(known))
    )
      return undefined;
    const partial = renderNftIncremental(known.value, next);
    // Most of the tables changed (all networks added at once): the whole-table script is no more
    // for nft to read, and depends on nothing kept.
    return partial !== undefined && partial.length < wholeLength ? partial : undefined;
  }

  /**
   * Whether the tables as known to `table` hold although nft's monitor showed its first line only
   * after the transaction that wrote them started (the agent's first after a start): the monitor
   * then printed one of the agent's own transactions on symroute's tables, which is that one (no
   * write of the agent's since) or an earlier one. Either way the monitor listened from the commit
   * of that one on; whatever committed before it was replaced (a whole-table transaction: the
   * first since `forget`; a partial one ran only on a table already proven). The foreign
   * transactions it printed since still count (`#valid`'s other conditions).
   */
  #seenListening(table: Kept<unknown>): boolean {
    return (
      this.#liveSince.firewall !== undefined &&
      this.#ownSeenAt !== undefined &&
      this.#ownSeenAt >= table.monoStart &&
      this.#valid(table, ["firewall"], true)
    );
  }

  /** Whether no routing line since `composed.since` concerns a route or rule it did not read. */
  #composedStillValid(composed: ComposedRead): boolean {
    if (this.#latestUntabledEvent > composed.since) return false;
    // Map.forEach: the maps hold every table and priority ever named (thousands), asked several
    // times per reconcile, and each step of for...of allocates its entry under --lite-mode.
    let valid = true;
    this.#latestRouteEventOf.forEach((at, table) => {
      if (valid && at > composed.since && !composed.tables.has(table)) valid = false;
    });
    this.#latestRuleEventOf.forEach((at, priority) => {
      if (valid && at > composed.since && !composed.priorities.has(priority)) valid = false;
    });
    return valid;
  }

  /**
   * After the agent's routing writes, what a read may take from the read they dropped: the routes
   * of every table but those the writes named, main and local (pods come and go there), and those
   * named by any routing line stamped since that read (another process's change). None when the
   * monitor was not listening then, a write may have changed routes anywhere, or a line since may
   * have (a link's, an address's, a route's in a table known by another name).
   */
  /** Whether the wall clock went back against the monotonic one since `kept` started (a step). */
  #wallSteppedBack(kept: Kept<unknown>): boolean {
    return this.#wallNow() - this.#now() < kept.wallStart - kept.monoStart - WALL_CLOCK_STEP_MS;
  }

  #composable(): { readonly basis: KeptRouting; readonly composed: ComposedRead } | undefined {
    const basis = this.#routingBasis;
    if (basis === undefined || basis.written === undefined || this.#writes.routing.running > 0)
      return undefined;
    if (this.#wallSteppedBack(basis.read)) return undefined;
    const live = this.#liveSince.routing;
    if (live === undefined || live > basis.read.monoStart) return undefined;
    // A composed read's other routes are as of its own `since`.
    const since = basis.read.composed?.since ?? basis.read.wallStart;
    if (this.#latestUntabledEvent > since) return undefined;
    const tables = new Set([TABLE_MAIN, TABLE_LOCAL, ...basis.written.tables]);
    for (const [table, at] of this.#latestRouteEventOf) if (at > since) tables.add(table);
    const priorities = new Set(basis.written.priorities);
    for (const [priority, at] of this.#latestRuleEventOf) if (at > since) priorities.add(priority);
    // Most tables named (networks added by the hundred): one read of everything is as cheap.
    if (tables.size > MAX_TARGETED_READS || priorities.size > MAX_TARGETED_READS) return undefined;
    return { basis: basis.read, composed: { since, tables, priorities } };
  }

  /** What one of the agent's routing writes changes (undefined: it may change routes anywhere). */
  #noteRoutingWrite(targets: BatchTargets | undefined): void {
    const basis = this.#routingBasis;
    if (basis === undefined || basis.written === undefined) return;
    if (targets === undefined) {
      basis.written = undefined;
      return;
    }
    for (const t of targets.tables) basis.written.tables.add(t);
    for (const p of targets.priorities) basis.written.priorities.add(p);
  }

  /** Whether nothing `kept` depends on can have changed since it was read. */
  #valid(kept: Kept<unknown>, dependsOn: readonly Evidence[], listening = false): boolean {
    // `listening`: the monitors are known to have listened since before anything that matters.
    for (const which of listening ? [] : dependsOn) {
      const since = this.#liveSince[which === "links" ? "routing" : which === "others" ? "firewall" : which];
      if (since === undefined || since > kept.monoStart) return false;
    }
    // The wall clock went back since the read started: ip's stamps can no longer be compared with it.
    if (
      (dependsOn.includes("routing") || dependsOn.includes("links") || dependsOn.includes("firewall")) &&
      this.#wallSteppedBack(kept)
    )
      return false;
    if (dependsOn.includes("routing") && this.#latestRoutingEvent > kept.wallStart) return false;
    if (
      dependsOn.includes("routing") &&
      kept.composed !== undefined &&
      !this.#composedStillValid(kept.composed)
    )
      return false;
    if (dependsOn.includes("links") && this.#latestLinkEvent > kept.wallStart) return false;
    if (dependsOn.includes("firewall") && this.#foreignAt.ours >= kept.monoStart) return false;
    if (dependsOn.includes("firewall") && this.#latestHookedLinkEvent > kept.wallStart) return false;
    if (dependsOn.includes("others") && this.#foreignAt.others >= kept.monoStart) return false;
    // A transaction still without its generation line: a read that started after its first line
    // came saw it, whoever made it; an earlier one waits for the line (the agent's own: still good).
    const pending = this.#pending;
    if (
      pending !== undefined &&
      pending.since > kept.monoStart &&
      ((dependsOn.includes("firewall") && pending.ours) || (dependsOn.includes("others") && pending.others))
    )
      return false;
    return true;
  }

  /** The Kernel port with reads served from what was kept, when it is still good. */
  wrap(kernel: Kernel): Kernel {
    /** A write of the agent's: drops what was kept of its domain while it runs, and after. */
    const domainWrite = async <T>(domain: MonitorName, write: () => Promise<T>): Promise<T> => {
      const writes = this.#writes[domain];
      writes.running++;
      writes.epoch++;
      if (domain === "routing") {
        // The read this write makes stale, if it was good: the next read takes the tables the
        // writes do not name from it. Writes side by side (both families) share it.
        const kept = this.#routing;
        if (kept !== undefined)
          this.#routingBasis = this.#valid(kept, ["routing"])
            ? { read: kept, written: { tables: new Set(), priorities: new Set() } }
            : undefined;
        this.#routing = undefined;
      } else {
        this.#firewall = undefined;
        this.#transaction = undefined;
        this.#table = undefined;
      }
      try {
        return await write();
      } finally {
        writes.running--;
        writes.epoch++;
      }
    };
    const routingWrite = <T>(write: () => Promise<T>): Promise<T> => domainWrite("routing", write);
    const firewallWrite = <T>(write: () => Promise<T>): Promise<T> => domainWrite("firewall", write);
    const start = (): { wallStart: number; monoStart: number } => ({
      wallStart: this.#wallNow(),
      monoStart: this.#now(),
    });

    return {
      // Passed through (a class's methods are not own properties: named one by one).
      ipsetAvailable: () => kernel.ipsetAvailable(),
      iptablesMangleExists: (family) => kernel.iptablesMangleExists(family),
      iptablesBaseChainsAbsent: (family, chains) => kernel.iptablesBaseChainsAbsent(family, chains),
      availableFirewalls: () => kernel.availableFirewalls(),
      readNode: async (scope: ReadScope): Promise<NodeState> => {
        const cacheable =
          scope.firewalls.length === 0 && scope.neighbours !== true && scope.kubeProxyServices !== true;
        if (!cacheable) {
          this.#reads.passThrough = true;
          return kernel.readNode(scope);
        }
        if (scope.kubeProxyHints === true) this.#reads.kubeProxy = true;
        if (scope.datapath !== undefined) this.#reads.datapath = true;
        const kept = await this.#nodeFromCache(scope);
        if (kept !== undefined) {
          this.#onRead("cache");
          return kept;
        }
        // Both families, whatever was asked: verification reads only those it wrote, and the
        // next plan needs both.
        const began = {
          ...start(),
          epoch: this.#writes.routing.epoch,
          writing: this.#writes.routing.running > 0,
        };
        const node = await this.#readRouting(kernel, { ...scope, families: [4, 6] }, began.writing);
        this.#onRead(node.composed === undefined ? "kernel" : "tables");
        if (!began.writing && began.epoch === this.#writes.routing.epoch) {
          const { firewall: _f, kubeProxy, datapath, composed, ...routing } = node;
          this.#routing = { value: routing, ...began, ...(composed === undefined ? {} : { composed }) };
          this.#routingBasis = undefined;
          if (kubeProxy !== undefined) {
            const { ipvsLink: _i, ...traces } = kubeProxy;
            this.#kubeProxy = { value: traces, ...began };
          }
          if (scope.datapath !== undefined)
            this.#datapath = { value: datapath, key: datapathKey(scope), ...began };
        }
        return project(node, scope.families ?? [4, 6]);
      },
      readFirewall: async (backends) => {
        // nft's tables only: the iptables front end's ipsets change without any event.
        if (backends.length !== 1 || backends[0] !== "nftables") {
          if (backends.length > 0) this.#reads.passThrough = true;
          return kernel.readFirewall(backends);
        }
        this.#reads.firewall = true;
        const kept = this.#firewall;
        if (kept !== undefined && this.#writes.firewall.running === 0 && this.#valid(kept, ["firewall"])) {
          this.#onRead("cache");
          return kept.value;
        }
        const began = {
          ...start(),
          epoch: this.#writes.firewall.epoch,
          writing: this.#writes.firewall.running > 0,
        };
        const transaction = began.writing ? undefined : this.#transaction;
        // Right after the agent's own transaction: only the chains it changed, when it can.
        const partial = transaction === undefined ? undefined : await this.#listChanged(transaction);
        this.#onRead(partial === undefined ? "kernel" : "chains");
        const read = partial ?? (await kernel.readFirewall(backends));
        if (!began.writing && began.epoch === this.#writes.firewall.epoch) {
          const after = transaction !== undefined && this.#followed(transaction, began.epoch);
          const listed =
            after && read.length === 1 && read[0] !== undefined ? listingByChain(read[0]) : undefined;
          this.#firewall = {
            value: read,
            ...began,
            ...(transaction !== undefined && listed !== undefined
              ? { basis: { chains: transaction.chains, listed } }
              : {}),
          };
        }
        return read;
      },
      runIpBatch: (family, lines) =>
        routingWrite(() => {
          this.#noteRoutingWrite(batchTargets(lines));
          return kernel.runIpBatch(family, lines);
        }),
      writeSysctls: (values) =>
        routingWrite(() => {
          // A sysctl (disable_ipv6, say) can drop routes anywhere.
          this.#noteRoutingWrite(undefined);
          return kernel.writeSysctls(values);
        }),
      runNft: async (script) => {
        // What was kept when the transaction started, if still good: the basis of the next listing.
        const kept = this.#firewall;
        const basis =
          kept?.basis !== undefined && this.#writes.firewall.running === 0 && this.#valid(kept, ["firewall"])
            ? kept.basis
            : undefined;
        const chains = scriptChains(script);
        // Only the chains that changed, when the tables are surely as the last transaction left them.
        const partial = chains === undefined ? undefined : this.#partialTransaction(chains, script.length);
        const began = start();
        const known = this.#table?.value;
        this.#dropPrinting();
        // A whole-table transaction is verified from its printing too, once nft's monitor has
        // shown that it is running (else there would be nothing to wait for).
        const printing: PrintedRun | undefined =
          chains !== undefined && (partial !== undefined || this.#liveSince.firewall !== undefined)
            ? { pids: new Set(), running: true, printed: undefined, waiters: [] }
            : undefined;
        this.#printing = printing;
        const ran = await firewallWrite(async (): Promise<NftTransactionKind> => {
          try {
            if (partial === undefined) {
              await kernel.runNft(script);
              return "full";
            }
            try {
              await kernel.runNft(partial);
              return "partial";
            } catch (error) {
              this.#dropPrinting();
              // nft refused it and changed nothing: the tables are not as known, so whole.
              if (!(error instanceof BatchError) || error.tool !== "nft") throw error;
              await kernel.runNft(script);
              return "partial-refused";
            }
          } finally {
            if (printing !== undefined) printing.running = false;
          }
        });
        this.#nftTransaction ??= ran;
        this.#onNftTransaction(ran);
        if (chains !== undefined) {
          // The chains the transaction made anew (after a refused partial one, nothing was printed).
          const rewritten =
            ran === "partial"
              ? known === undefined
                ? undefined
                : rewrittenChains(known, chains)
              : ran === "full"
                ? new Set(chains.keys())
                : undefined;
          this.#transaction = {
            chains,
            ...(basis === undefined ? {} : { basis }),
            ...(rewritten === undefined || printing === undefined
              ? {}
              : { printed: { rewritten, run: printing, whole: ran === "full" } }),
            startMono: began.monoStart,
            epoch: this.#writes.firewall.epoch,
          };
          this.#table = { value: chains, ...began, epoch: this.#writes.firewall.epoch, verified: false };
        }
      },
      runIptablesRestore: (family, payload) =>
        firewallWrite(() => kernel.runIptablesRestore(family, payload)),
      runIpsetRestore: (payload) => firewallWrite(() => kernel.runIpsetRestore(payload)),
      dropEmptyIptablesMangle: (family) => firewallWrite(() => kernel.dropEmptyIptablesMangle(family)),
      dropEmptyIptablesChain: (family, chain) =>
        firewallWrite(() => kernel.dropEmptyIptablesChain(family, chain)),
    };
  }

  /**
   * The node read from the kernel: after the agent's routing writes, only the route tables they
   * and the lines since named, the other routes taken from the read the writes dropped
   * (#composable; `composed` then says how it was made); else whole.
   */
  async #readRouting(
    kernel: Kernel,
    scope: ReadScope,
    writing: boolean,
  ): Promise<NodeState & { readonly composed?: ComposedRead }> {
    const composable = writing ? undefined : this.#composable();
    if (composable === undefined) return kernel.readNode(scope);
    const { basis, composed } = composable;
    const node = await kernel.readNode({
      ...scope,
      routeTables: [...composed.tables].sort((a, b) => a - b),
      rulePriorities: [...composed.priorities].sort((a, b) => a - b),
    });
    // A line that came during the read may name another table, or drop routes anywhere.
    if (!this.#composedStillValid(composed)) return kernel.readNode(scope);
    const routes = node.routes.concat(basis.value.routes.filter((r) => !composed.tables.has(r.table)));
    // In the kernel's order (by family, then priority): all rules of one priority come from one
    // read, in their order, and the sort is stable.
    const rules = node.rules
      .concat(basis.value.rules.filter((r) => !composed.priorities.has(r.priority)))
      .sort((a, b) => a.family - b.family || a.priority - b.priority);
    return { ...node, routes, rules, composed };
  }

  /**
   * Whether a read that started at `epoch` came right after `transaction`: no write since it, no
   * foreign nft transaction since it started (that one could have changed a chain it did not).
   */
  #followed(transaction: Transaction, epoch: number): boolean {
    return epoch === transaction.epoch && this.#foreignAt.ours < transaction.startMono;
  }

  /**
   * The firewall after the agent's transaction: the chains it changed from what nft's monitor
   * printed of it, or listed one by one (the others list as they did after the transaction the
   * basis followed); undefined: list it whole. Without a basis, only a whole-table transaction
   * (which made every chain anew) can be verified so.
   */
  async #listChanged(transaction: Transaction): Promise<OwnedFirewall[] | undefined> {
    const { basis, printed: made } = transaction;
    const list = this.#listNftChain;
    if (list === undefined || !this.#followed(transaction, this.#writes.firewall.epoch)) return undefined;
    if (basis === undefined && made?.whole !== true) return undefined;
    const chains =
      basis === undefined
        ? [...transaction.chains]
        : chainsToList(basis.chains, basis.listed, transaction.chains);
    const labels = chains.map(([label]) => label);
    // Without a printing to wait for, a process per chain pays off only for a few (a network more
    // or less changes five or six); more, and the table is listed whole.
    if (labels.length > MAX_CHAINS_LISTED && made === undefined) return undefined;
    const printed = await this.#printedRules(transaction, labels);
    // Without a listing before, a chain is the printing's or listed; no printing: the tables whole.
    if (basis === undefined && printed === undefined) return undefined;
    const fromMonitor = new Map<string, ListedRule[]>();
    const toList: string[] = [];
    for (const [label, script] of chains) {
      const rules =
        printed === undefined || made?.rewritten.has(label) !== true
          ? undefined
          : printedChain(script, basis?.chains.get(label), basis?.listed.get(label), printed.get(label));
      if (rules === undefined) toList.push(label);
      else fromMonitor.set(label, rules);
    }
    // 1,000 networks added at once with no printing: 2,000 chains.
    if (toList.length > MAX_CHAINS_LISTED) return undefined;
    for (let i = 0; i < fromMonitor.size; i++) this.#onChainFrom("monitor");
    const fresh = new Map<string, readonly ListedRule[]>(
      await Promise.all(
        chains.map(async ([label, script]) => {
          let rules = fromMonitor.get(label);
          if (rules === undefined) {
            this.#onChainFrom("listed");
            rules = [...(await list(script.family, script.chain))];
          }
          return [label, asListed(label, rules)] as const;
        }),
      ),
    );
    return [composeListing(basis?.listed ?? new Map(), transaction.chains, fresh)];
  }

  /**
   * What nft's monitor printed for the agent's `transaction`, by chain, waited for up to
   * PRINT_WAIT_MS; undefined when it did not come, or when anything could have come between:
   * another transaction's lines without their generation line yet, another process's transaction
   * since it started, a write of the agent's since (then the changed chains are listed).
   */
  async #printedRules(
    transaction: Transaction,
    labels: readonly string[],
  ): Promise<ReadonlyMap<string, PrintedChain> | undefined> {
    const run = transaction.printed?.run;
    if (run === undefined || !labels.some((l) => transaction.printed?.rewritten.has(l) === true))
      return undefined;
    // Each wait ends with the printing, or after PRINT_WAIT_MS; again while nft's monitor is still
    // printing (a line about symroute's tables came during the last wait), up to PRINT_WAIT_MAX_MS
    // in all: under load its printing of a large transaction (80 KB for one network added to 1,000,
    // 310 KB for a whole table, a few bytes per write) can take longer than one wait, and listing
    // the chains instead costs nft more of the CPU it is short of (docs/agent.md).
    for (let waited = 0; run.printed === undefined && this.#printing === run && waited < PRINT_WAIT_MAX_MS;) {
      const linesBefore = this.#symrouteLines;
      await new Promise<void>((resolve) => {
        const cancel = this.#timer(PRINT_WAIT_MS, resolve);
        run.waiters.push(() => {
          cancel();
          resolve();
        });
      });
      waited += PRINT_WAIT_MS;
      if (this.#symrouteLines === linesBefore) break;
    }
    if (
      run.printed === undefined ||
      this.#pending !== undefined ||
      !this.#followed(transaction, this.#writes.firewall.epoch)
    )
      return undefined;
    return printedByChain(run.printed);
  }

  /** The node as kept, with the sysctls read afresh (files, no process); undefined when not good. */
  async #nodeFromCache(scope: ReadScope): Promise<NodeState | undefined> {
    const routing = this.#routing;
    if (routing === undefined || this.#writes.routing.running > 0 || !this.#valid(routing, ["routing"]))
      return undefined;
    // kube-proxy's traces are in its nft tables (iptables-nft's too); the datapath is on links
    // (XDP, tc) and in BPF's file system (no event: seen at the resync). The agent's own routing
    // writes change neither.
    const kubeProxy = this.#kubeProxy;
    if (scope.kubeProxyHints === true && (kubeProxy === undefined || !this.#valid(kubeProxy, ["others"])))
      return undefined;
    const datapath = this.#datapath;
    if (
      scope.datapath !== undefined &&
      (datapath === undefined ||
        datapath.key !== datapathKey(scope) ||
        !this.#valid(datapath, ["links", "others"]))
    )
      return undefined;
    const names = new Set(scope.sysctls);
    for (const template of scope.linkSysctls ?? []) {
      for (const link of routing.value.links) names.add(template.replace("{}", link.ifname));
    }
    const sysctls: Record<string, string> = {};
    await Promise.all(
      [...names].map(async (name) => {
        const value = await this.#readSysctl(name);
        if (value !== undefined) sysctls[name] = value;
      }),
    );
    return {
      ...project({ ...routing.value, firewall: [] }, scope.families ?? [4, 6]),
      sysctls,
      ...(scope.kubeProxyHints === true && kubeProxy !== undefined
        ? {
            kubeProxy: {
              ipvsLink: routing.value.links.some((l) => l.ifname === "kube-ipvs0"),
              ...kubeProxy.value,
            },
          }
        : {}),
      ...(scope.datapath !== undefined && datapath?.value !== undefined ? { datapath: datapath.value } : {}),
    };
  }
}

/**
 * How long a tool the agent started counts as its own in nft's generation lines: its line comes
 * within a second or two; a line later than this is taken for another process's (a full read).
 */
export const OWN_PROCESS_MS = 30_000;

/**
 * How long verification waits for nft's monitor to print the agent's transaction before it lists
 * the changed chains instead (it prints within milliseconds of the commit on an idle node), and
 * again while lines keep coming, up to PRINT_WAIT_MAX_MS in all.
 */
export const PRINT_WAIT_MS = 250;
export const PRINT_WAIT_MAX_MS = 2_000;

/** The most chains listed one by one after a transaction; beyond it, the tables are listed whole. */
export const MAX_CHAINS_LISTED = 12;

/** What a reconcile's reads depended on (`ReadCache.unchanged`). */
interface ReadsMade {
  passThrough: boolean;
  firewall: boolean;
  kubeProxy: boolean;
  datapath: boolean;
}

const NO_READS: Readonly<ReadsMade> = {
  passThrough: false,
  firewall: false,
  kubeProxy: false,
  datapath: false,
};

const datapathKey = (scope: ReadScope): string => JSON.stringify(scope.datapath?.interfaces ?? []);

/** The node with only the families asked for (the kernel adapter reads no others). */
function project(node: NodeState, families: readonly Family[]): NodeState {
  if (families.includes(4) && families.includes(6)) return node;
  const keep = <T extends { readonly family: Family }>(objects: readonly T[]): T[] =>
    objects.filter((o) => families.includes(o.family));
  return { ...node, addresses: keep(node.addresses), routes: keep(node.routes), rules: keep(node.rules) };
}
