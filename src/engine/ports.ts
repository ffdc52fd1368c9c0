// The seams between the engine and the node. Adapters implement them for the real kernel
// (src/adapters/) and tests implement them in memory (test/support/fake-kernel.ts); one contract
// suite runs against both.

import type { Family } from "../model/address.ts";
import { SymrouteError, type ErrorKind, type SymrouteErrorOptions } from "../model/errors.ts";
import type { FirewallBackend, NodeState, OwnedFirewall } from "../model/state.ts";
import type { FirewallSpec } from "../model/firewall.ts";
import type { Allocation } from "../plan/types.ts";

export interface ReadScope {
  /** sysctl names to read (they are not enumerable cheaply). */
  readonly sysctls: readonly string[];
  /** sysctl name templates read once per link, "{}" standing for the interface name. */
  readonly linkSysctls?: readonly string[];
  /** Firewall front ends whose symroute-owned objects to read. */
  readonly firewalls: readonly FirewallBackend[];
  /** Also look for kube-proxy's traces (for `kubeProxyMode: auto`); two more tool runs. Default: no. */
  readonly kubeProxyHints?: boolean;
  /**
   * Families whose addresses, routes and rules to read (default both); the state holds none of
   * the others. Links are read either way.
   */
  readonly families?: readonly Family[];
  /**
   * Read the routes of only these tables (the state then holds no other table's routes); default:
   * every table. Links and addresses are read whole either way.
   */
  readonly routeTables?: readonly number[];
  /** Read the rules of only these priorities (both families); default: every rule. */
  readonly rulePriorities?: readonly number[];
  /** Also read the neighbour table of the families read (doctor). Default: no. */
  readonly neighbours?: boolean;
  /**
   * Also read kube-proxy's DNAT targets from its rules (iptables nat, nft tables `ip`/`ip6
   * kube-proxy`): doctor and explain simulate with them. Four more tool runs. Default: no.
   */
  readonly kubeProxyServices?: boolean;
  /**
   * Also look for datapaths that bypass netfilter (pinned BPF maps, XDP programs, and tc ingress
   * programs on these interfaces, read only when the maps or links show Cilium or Calico).
   */
  readonly datapath?: { readonly interfaces: readonly string[] };
}

/** The tools that take their input as one batch, one object per line. */
export type BatchTool = "ip" | "nft" | "iptables-restore" | "ip6tables-restore" | "ipset";

export interface BatchErrorOptions extends SymrouteErrorOptions {
  readonly tool: BatchTool;
  /** The line the tool refused, counted from 1; undefined when its message names none. */
  readonly failedLine?: number;
  /** That line as it was sent (it goes first in the details, as `failing line N: ...`). */
  readonly failedText?: string;
}

/**
 * A batch tool refused its input. `ip -batch` and `ipset restore` have run every line before
 * `failedLine` (roll back undoes those); an `nft -f` or `iptables-restore` transaction has changed
 * nothing.
 */
export class BatchError extends SymrouteError {
  readonly tool: BatchTool;
  readonly failedLine: number | undefined;

  constructor(kind: ErrorKind, message: string, options: BatchErrorOptions) {
    const { tool, failedLine, failedText, ...rest } = options;
    super(kind, message, {
      ...rest,
      details: [
        ...(failedLine === undefined || failedText === undefined
          ? []
          : [`failing line ${failedLine}: ${failedText}`]),
        ...(rest.details ?? []),
      ],
    });
    this.tool = tool;
    this.failedLine = failedLine;
  }
}

export interface Kernel {
  /** Links, addresses, routes of every table, rules, the named sysctls, symroute's firewall objects. */
  readNode(scope: ReadScope): Promise<NodeState>;
  /**
   * Only symroute's firewall objects (what `readNode` puts in `firewall`): verification reads them
   * as soon as the firewall transaction is done, while routing is still being written.
   */
  readFirewall(backends: readonly FirewallBackend[]): Promise<readonly OwnedFirewall[]>;
  /** One `ip [-6] -batch -`; a refused line throws a BatchError naming it. */
  runIpBatch(family: Family, lines: readonly string[]): Promise<void>;
  /** One `nft -f -` transaction; refused, it changes nothing and throws a BatchError. */
  runNft(script: string): Promise<void>;
  /**
   * One `iptables-restore --noflush` (ip6tables-restore for 6); refused, it changes nothing and
   * throws a BatchError.
   */
  runIptablesRestore(family: Family, payload: string): Promise<void>;
  /**
   * One `ipset restore -exist` (symroute's sets for the iptables front end). Not a transaction:
   * ipset stops at a failing line and keeps what ran before it; throws naming the failing line.
   */
  runIpsetRestore(payload: string): Promise<void>;
  /** Whether ipset can be run on this node (the iptables front end keeps its pools in sets). */
  ipsetAvailable(): Promise<boolean>;
  /** Write sysctls in the given order. */
  writeSysctls(values: readonly (readonly [string, string])[]): Promise<void>;
  /** Whether iptables' mangle table exists (iptables-nft creates it on first use). */
  iptablesMangleExists(family: Family): Promise<boolean>;
  /** Remove iptables' mangle table again if it holds nothing (symroute created it). */
  dropEmptyIptablesMangle(family: Family): Promise<void>;
  /**
   * Which of `chains` (built-in chains of iptables' mangle table) are absent: iptables-nft makes
   * one on its first use. Unknown (a read that fails, legacy iptables): none.
   */
  iptablesBaseChainsAbsent(family: Family, chains: readonly string[]): Promise<string[]>;
  /** Remove a built-in chain of iptables' mangle table again if it is empty, policy accept (symroute created it). */
  dropEmptyIptablesChain(family: Family, chain: string): Promise<void>;
  /** Which firewall front ends work on this node. */
  availableFirewalls(): Promise<readonly FirewallBackend[]>;
}

/** What symroute keeps between runs, per network namespace. */
export interface SavedState {
  readonly version: 1;
  /** sysctl values before symroute first changed them, to restore exactly on delete. */
  readonly previousSysctls: Readonly<Record<string, string>>;
  /** Stable table and mark allocations per network name. */
  readonly allocations: Readonly<Record<string, Allocation>>;
  /**
   * Tables and marks networks held and none holds now, by the network that held them (a removed
   * network's connections can still carry its mark): new networks take them only when the room has
   * no other, and a network of that name that comes back takes its own again. Absent: none.
   */
  readonly freedAllocations?: Readonly<Record<string, Allocation>>;
  /** Links symroute created (VLAN interfaces), deleted again on delete. */
  readonly createdLinks: readonly string[];
  readonly firewall?: FirewallBackend;
  /** The firewall last applied, so that a failed apply can put it back. */
  readonly firewallSpec?: FirewallSpec;
  /**
   * symroute's firewall rules as the kernel listed them right after the last apply (canonical,
   * sorted), by front end: a rule changed under the same comment differs from this record.
   */
  readonly firewallContents?: Partial<Record<FirewallBackend, readonly string[]>>;
  /** Families whose iptables mangle table symroute's first iptables-restore created. */
  readonly iptablesTablesCreated?: readonly Family[];
  /**
   * Written with `inProgress` before an apply: families whose iptables mangle table was absent and
   * that the apply's iptables-restore may create. The next run takes as symroute's those it finds
   * holding symroute's chains (the restore makes the table and the chains together), and forgets
   * the others: a table that was there before, or is made later by another tool, is never
   * symroute's. Absent: none.
   */
  readonly iptablesTablesCreating?: readonly Family[];
  /**
   * Built-in chains of iptables' mangle table (`4:PREROUTING`) that symroute's iptables-restore
   * created (iptables-nft makes one on first use, also in a table that was there, such as
   * kube-proxy's with only its own chains): removed again when empty once symroute no longer
   * uses the front end. Absent: none.
   */
  readonly iptablesChainsCreated?: readonly string[];
  /**
   * Written with `inProgress` before an apply, as iptablesTablesCreating: the built-in chains that
   * were absent and that the apply's iptables-restore may create. The next run takes as
   * symroute's those it finds holding symroute's jumps. Absent: none.
   */
  readonly iptablesChainsCreating?: readonly string[];
  /** The rule-priority band and protocol in force when the state was written. */
  readonly rulePriorities?: { readonly from: number; readonly to: number };
  readonly routeProtocol?: number;
  /**
   * Numbers `routeProtocol` had before a move to another that no verified run has finished yet:
   * routes and rules under them are still symroute's (deleted and made again under the new
   * number). Written with `inProgress` before the move touches the node, and with a roll back that
   * could not undo everything (a complete one writes the saved marks);
   * cleared by the commit that verified nothing of symroute's carries them. Absent: none.
   */
  readonly formerRouteProtocols?: readonly number[];
  /** An apply was under way and did not finish: the next run must converge fully. */
  readonly inProgress?: boolean;
  /**
   * The fields above that miss what was there before symroute: this record was first written on a
   * node that already held symroute's objects (its state file lost), so their earlier values are
   * gone, and delete refuses as without a state file. Absent (and in older files): all known.
   */
  readonly baselineUnknown?: readonly BaselinePart[];
}

/** A part of the state that records the node as it was before symroute (the field's name). */
export type BaselinePart = "previousSysctls" | "createdLinks" | "iptablesTablesCreated";

export type { Allocation };

export interface StateStore {
  read(): Promise<SavedState | undefined>;
  write(state: SavedState): Promise<void>;
  remove(): Promise<void>;
  /** Exclusive per network namespace; waits up to `waitMs`, then throws a "busy" error. */
  lock(waitMs: number): Promise<() => Promise<void>>;
  /** Where the state lives, for messages. */
  readonly location: string;
}
