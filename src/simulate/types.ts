// What the simulator takes and gives: a packet as `ip route get` describes one, and a trace of the
// kernel's decision (rule walk, table lookup, rp_filter) with the verdict the kernel would give.

import type { Family } from "../model/address.ts";
import type { FirewallBackend, Route, Rule } from "../model/state.ts";
import type { SpoofGuard } from "../model/firewall.ts";

/** A packet to route, in the words of `ip route get`. */
export interface Packet {
  /** Destination address (canonical or any text `parseIp` accepts). */
  readonly to: string;
  /** Source address; undefined is "no source chosen yet" (0.0.0.0 / ::), as `ip route get` without `from`. */
  readonly from?: string;
  /** Input interface: the packet arrived on it (`ip route get ... iif DEV`). Undefined: locally generated. */
  readonly iif?: string;
  /** Output interface a local socket is bound to (`ip route get ... oif DEV`); IPv4 only. */
  readonly oif?: string;
  /** Firewall mark (skb->mark), 0 when unset. */
  readonly mark?: number;
  /** The TOS/DS field byte. */
  readonly tos?: number;
  /** IP protocol number (6 tcp, 17 udp). */
  readonly ipproto?: number;
  readonly sport?: number;
  readonly dport?: number;
  /** Socket owner of a locally generated packet; 0 (root) when unset, as for `ip route get`. */
  readonly uid?: number;
  /**
   * Input packets: the address kube-proxy's DNAT rewrites `to` into. The anti-spoofing guard
   * (before DNAT: ingress of its interface in nftables, mangle prerouting in iptables) sees `to`;
   * routing and rp_filter, which come after the DNAT, see this.
   */
  readonly dnatTo?: string;
}

/**
 * The verdict. `unicast`, `local` and `broadcast` are routes the kernel would use; `blackhole`,
 * `unreachable` and `prohibit` are refusals by a rule action or a route type; `rejected` is a refusal
 * by a source check (rp_filter, a martian source, a non-local source address); `unsupported` means
 * the state or the packet needs kernel behaviour the simulator does not model: nothing is guessed.
 */
export type Verdict =
  "unicast" | "local" | "broadcast" | "blackhole" | "unreachable" | "prohibit" | "rejected" | "unsupported";

/** The errno `ip route get` answers with when the kernel refuses. */
export type RouteErrno = "ENETUNREACH" | "EHOSTUNREACH" | "EACCES" | "EINVAL";

type StepStage = "packet" | "guard" | "rule" | "lookup" | "rp_filter" | "verdict";

/** One line of the explanation. */
export interface Step {
  readonly stage: StepStage;
  /** With stage "rule": the rule's priority. */
  readonly priority?: number;
  /** With stage "rule": the rule as `ip rule` prints it. */
  readonly rule?: string;
  /** With stage "rule": whether the selectors matched. */
  readonly matched?: boolean;
  /** With stage "lookup": the table searched. */
  readonly table?: number;
  /** With stage "lookup": the route found, as `ip route` prints it. */
  readonly route?: string;
  /** Why, in a few words. */
  readonly reason: string;
}

export type RpFilterMode = 0 | 1 | 2;

export interface RpFilterVerdict {
  /** Effective mode: max(conf.all.rp_filter, conf.IFACE.rp_filter). */
  readonly mode: RpFilterMode;
  readonly accepted: boolean;
  readonly reason: string;
}

/** symroute's anti-spoofing guard on the packet's input interface (before DNAT and routing). */
export interface GuardVerdict {
  readonly iif: string;
  readonly mode: "strict" | "loose";
  /** exempt: addressed to a pool of the interface; pass: its source routes back; drop: it does not. */
  readonly result: "exempt" | "pass" | "drop";
  readonly reason: string;
}

export interface Trace {
  readonly result: Verdict;
  readonly family: Family;
  /** What `ip route get` answers when the kernel refuses (result is not unicast/local/broadcast). */
  readonly errno?: RouteErrno;
  /** The table the route was found in. */
  readonly table?: number;
  /** The device the packet leaves by ("lo" for local delivery). */
  readonly dev?: string;
  readonly gateway?: string;
  /** The route that decided, as in the node state. */
  readonly route?: Route;
  /** The rule that decided (lookup that found the route, or the refusing action). */
  readonly rule?: Rule;
  /** Input packets (IPv4): the reverse-path check. */
  readonly rpFilter?: RpFilterVerdict;
  /** Input packets on an interface with one of the guards given in TraceOptions. */
  readonly guard?: GuardVerdict;
  /** For rejected and unsupported results, and refusals: what and why. */
  readonly reason?: string;
  /** Only with `{ explain: true }`. */
  readonly steps?: readonly Step[];
}

export interface TraceOptions {
  /** Build the step list (slower: every rule is tried and described). */
  readonly explain?: boolean;
  /**
   * symroute's anti-spoofing guards in place on the node (FirewallSpec.guards): input packets on
   * their interfaces go through them first, as through the firewall's guard chains (before DNAT).
   */
  readonly guards?: readonly SpoofGuard[];
  /**
   * The front end holding them (default nftables): they check alike but for an IPv6 source that is
   * not link-local, where ip6tables' strict rpfilter prefers a route out of the input interface.
   */
  readonly guardFrontEnd?: FirewallBackend;
}
