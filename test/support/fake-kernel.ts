// An in-memory node that takes the same payloads as the real one. Each `ip -batch` and `ipset
// restore` runs line by line and stops at the first failure, keeping what ran (as ip and ipset do);
// nft and iptables-restore transactions apply to a copy and land only whole (as the kernel's do).
// Faults can be injected per tool.

import {
  canonicalPrefix,
  parseIp,
  parsePrefix,
  prefixContainsIp,
  type Family,
} from "../../src/model/address.ts";
import { SymrouteError } from "../../src/model/errors.ts";
import { routeKey, ruleKey } from "../../src/model/keys.ts";
import type {
  FirewallBackend,
  NodeState,
  OwnedFirewall,
  Route,
  RouteType,
  Rule,
  RuleAction,
} from "../../src/model/state.ts";
import { BatchError, type Kernel, type ReadScope } from "../../src/engine/ports.ts";
import { checkIptablesRestore, IptablesRefusal } from "./fake-iptables.ts";
import { applyNftScript, checkNftScript, NftRefusal, type NftRuleset, type NftTables } from "./fake-nft.ts";
import { ARP_KEY_PREFIX, IPSET_KEY_PREFIX, arpKeyBackend } from "../../src/model/firewall.ts";
import { isSymrouteIpsetName } from "../../src/model/tokens.ts";

/** One ipset as the fake keeps it: its create line's parameters and its elements. */
interface FakeIpset {
  readonly params: string;
  readonly family: Family;
  readonly elements: Set<string>;
}

export interface FakeFaults {
  /** Fail the ip batch line matching this pattern. */
  ipLine?: RegExp;
  nft?: boolean;
  iptables?: boolean;
  /** Fail the ipset restore line matching this pattern. */
  ipsetLine?: RegExp;
  /** Fail writing this sysctl. */
  sysctl?: string;
  /**
   * Fail the reads of routing (`ip -j`: every readNode) or of the firewall (`nft -j list`,
   * iptables-save: readFirewall, and readNode when it reads a front end). Set it from `beforeStep`
   * to fail the reads after the apply wrote.
   */
  read?: "routing" | "firewall";
  /** Called before each step; throwing from it simulates a crash. */
  beforeStep?: (step: string) => void;
}

const ROUTE_TYPES = new Set<RouteType>([
  "unicast",
  "local",
  "broadcast",
  "anycast",
  "multicast",
  "blackhole",
  "unreachable",
  "prohibit",
  "throw",
  "nat",
]);
const RULE_ACTIONS = new Set<RuleAction>(["unreachable", "blackhole", "prohibit", "nop"]);

const clone = <T>(v: T): T => structuredClone(v);

function fail(message: string): never {
  throw new Error(message);
}

function parseRange(text: string): { start: number; end: number } {
  const [a, b] = text.split("-");
  return { start: Number(a), end: Number(b ?? a) };
}

function parseRouteLine(family: Family, words: string[]): Route {
  let i = 0;
  let type: RouteType = "unicast";
  if (ROUTE_TYPES.has(words[0] as RouteType)) type = words[i++] as RouteType;
  const dstWord = words[i++] ?? fail("missing destination");
  const dst =
    dstWord === "default" ? "default" : (canonicalPrefix(dstWord, family) ?? fail(`bad prefix ${dstWord}`));
  const route: Record<string, unknown> = { family, type, dst, table: 254 };
  while (i < words.length) {
    const w = words[i++];
    const v = words[i];
    switch (w) {
      case "via":
        route["gateway"] = v;
        i++;
        break;
      case "dev":
        route["dev"] = v;
        i++;
        break;
      case "from":
        route["src"] = canonicalPrefix(v ?? "", family);
        i++;
        break;
      case "table":
        route["table"] = Number(v);
        i++;
        break;
      case "proto":
        route["protocol"] = Number(v);
        i++;
        break;
      case "scope":
        route["scope"] = Number(v);
        i++;
        break;
      case "metric":
        route["metric"] = Number(v);
        i++;
        break;
      case "src":
        route["prefsrc"] = v;
        i++;
        break;
      case "tos":
        route["tos"] = Number(v);
        i++;
        break;
      case "onlink":
        route["onlink"] = true;
        break;
      default:
        fail(`Error: either "to" is duplicate, or "${String(w)}" is a garbage.`);
    }
  }
  return route as unknown as Route;
}

function parseRuleLine(family: Family, words: string[]): Rule {
  const rule: Record<string, unknown> = { family, action: "lookup" };
  for (let i = 0; i < words.length;) {
    const w = words[i++] as string;
    const v = words[i] ?? "";
    const take = (): string => {
      i++;
      return v;
    };
    switch (w) {
      case "priority":
        rule["priority"] = Number(take());
        break;
      case "not":
        rule["not"] = true;
        break;
      case "from":
        rule["from"] = canonicalPrefix(take(), family);
        break;
      case "to":
        rule["to"] = canonicalPrefix(take(), family);
        break;
      case "iif":
        rule["iif"] = take();
        break;
      case "oif":
        rule["oif"] = take();
        break;
      case "fwmark": {
        const [m, mask] = take().split("/");
        rule["fwmark"] = Number(m);
        if (mask !== undefined) rule["fwmask"] = Number(mask);
        break;
      }
      case "tos":
        rule["tos"] = Number(take());
        break;
      case "ipproto":
        rule["ipproto"] = Number(take());
        break;
      case "sport":
        rule["sport"] = parseRange(take());
        break;
      case "dport":
        rule["dport"] = parseRange(take());
        break;
      case "uidrange":
        rule["uidrange"] = parseRange(take());
        break;
      case "lookup":
        rule["table"] = Number(take());
        break;
      case "goto":
        rule["action"] = "goto";
        rule["goto"] = Number(take());
        break;
      case "suppress_prefixlength":
        rule["suppressPrefixlength"] = Number(take());
        break;
      case "proto":
        rule["protocol"] = Number(take());
        break;
      default:
        if (RULE_ACTIONS.has(w as RuleAction)) rule["action"] = w;
        else fail(`Error: argument "${w}" is wrong: Failed to parse rule type`);
    }
  }
  if (rule["fwmask"] === 0xffffffff) delete rule["fwmask"];
  return rule as unknown as Rule;
}

const IPV6_DEFAULT_METRIC = 1024;

/**
 * Whether `ip rule del` with selector `sel` (what its line gives) takes `rule`: as the kernel's
 * rule_find, an attribute the line leaves out (or gives as 0, "all") matches any value; a fwmark
 * without a mask stands for the mask 0xffffffff; an action other than lookup must be the same.
 */
function deleteSelects(sel: Rule, rule: Rule): boolean {
  const given = <T>(a: T | undefined, b: T | undefined): boolean => a === undefined || a === b;
  const range = (a: Rule["sport"], b: Rule["sport"]): boolean =>
    a === undefined || (b !== undefined && a.start === b.start && a.end === b.end);
  const ALL_ONES = 0xffffffff;
  const fwmaskSel = sel.fwmask ?? ((sel.fwmark ?? 0) !== 0 ? ALL_ONES : undefined);
  return (
    // A line without a priority leaves it undefined (parseRuleLine sets only what the line gives).
    given(sel.priority as number | undefined, rule.priority) &&
    (sel.from === undefined || sel.from === "default" || sel.from === rule.from) &&
    (sel.to === undefined || sel.to === "default" || sel.to === rule.to) &&
    given(sel.iif, rule.iif) &&
    given(sel.oif, rule.oif) &&
    ((sel.fwmark ?? 0) === 0 || sel.fwmark === rule.fwmark) &&
    (fwmaskSel === undefined ||
      fwmaskSel === (rule.fwmask ?? (rule.fwmark !== undefined ? ALL_ONES : undefined))) &&
    ((sel.tos ?? 0) === 0 || sel.tos === rule.tos) &&
    given(sel.ipproto, rule.ipproto) &&
    range(sel.sport, rule.sport) &&
    range(sel.dport, rule.dport) &&
    range(sel.uidrange, rule.uidrange) &&
    (sel.action === "lookup" || sel.action === rule.action) &&
    given(sel.table, rule.table) &&
    given(sel.goto, rule.goto) &&
    given(sel.suppressPrefixlength, rule.suppressPrefixlength) &&
    given(sel.protocol, rule.protocol) &&
    (sel.not !== true || rule.not === true)
  );
}

/** A read tool's failure as the real adapter reports it (src/adapters/exec.ts). */
const readFailure = (command: string): SymrouteError =>
  new SymrouteError("kernel", `${command} failed (exit 1): injected read failure`, {
    details: ["injected read failure"],
  });

export class FakeKernel implements Kernel {
  state: NodeState;
  faults: FakeFaults = {};
  firewalls: FirewallBackend[] = ["nftables", "iptables"];
  /** Whether ipset is installed (false: a node without the Debian package ipset). */
  ipsetInstalled = true;
  /** The kernel's ipsets, by name. */
  ipsets = new Map<string, FakeIpset>();
  /** The set each iptables rule ("4:key") refers to: a set in use cannot be destroyed. */
  private readonly setRefs = new Map<string, string>();
  /** Every payload received, for assertions. */
  readonly log: { tool: string; input: string }[] = [];
  /** Interface sysctls written explicitly (no longer follow conf/default). */
  readonly explicit = new Set<string>();
  /** nft tables and their chains, as the transactions so far left them. */
  private nftTables: NftTables = new Map();
  /** What the nft transactions so far left in the tables, rule by rule (a partial one changes them in place). */
  private nftRuleset: NftRuleset = new Map();
  /** iptables' mangle chains per family, as the restores so far left them. */
  private readonly iptablesChains: Record<Family, ReadonlySet<string>> = { 4: new Set(), 6: new Set() };

  constructor(initial: NodeState) {
    this.state = clone(initial);
    // An interface value that differs from conf/default must have been set explicitly.
    for (const [name, value] of Object.entries(initial.sysctls)) {
      const m = /^net\/ipv4\/conf\/([^/]+)\/(.+)$/.exec(name);
      if (m === null || m[1] === "all" || m[1] === "default") continue;
      if (initial.sysctls[`net/ipv4/conf/default/${m[2]}`] !== value) this.explicit.add(name);
    }
  }

  async readNode(scope: ReadScope): Promise<NodeState> {
    if (this.faults.read === "routing") throw readFailure("ip -j -batch -");
    if (scope.firewalls.length > 0) this.failFirewallRead();
    const names = new Set(scope.sysctls);
    for (const t of scope.linkSysctls ?? [])
      for (const l of this.state.links) names.add(t.replace("{}", l.ifname));
    const sysctls: Record<string, string> = {};
    for (const n of names) {
      const v = this.state.sysctls[n];
      if (v !== undefined) sysctls[n] = v;
    }
    const families = scope.families ?? [4, 6];
    const read = <T extends { readonly family: Family }>(objects: readonly T[]): T[] =>
      objects.filter((o) => families.includes(o.family));
    // Like the real reader: the neighbour table and the datapath traces only when asked for.
    const { neighbours, datapath, ...rest } = this.state;
    return clone({
      ...rest,
      addresses: read(this.state.addresses),
      routes: read(this.state.routes).filter(
        (r) => scope.routeTables === undefined || scope.routeTables.includes(r.table),
      ),
      rules: read(this.state.rules).filter(
        (r) => scope.rulePriorities === undefined || scope.rulePriorities.includes(r.priority),
      ),
      sysctls,
      firewall: this.firewallOf(scope.firewalls),
      ...(scope.neighbours === true ? { neighbours: read(neighbours ?? []) } : {}),
      ...(scope.datapath !== undefined && datapath !== undefined ? { datapath } : {}),
    });
  }

  async readFirewall(backends: readonly FirewallBackend[]): Promise<readonly OwnedFirewall[]> {
    this.failFirewallRead();
    return clone(this.firewallOf(backends));
  }

  /** Like the real reader: one entry per front end read, empty when it holds nothing of ours. */
  private firewallOf(backends: readonly FirewallBackend[]): OwnedFirewall[] {
    return backends.map((backend) => {
      const owned = this.state.firewall.find((f) => f.backend === backend) ?? { backend, ruleKeys: [] };
      if (backend !== "iptables") return owned;
      // Like the real reader: symroute's sets are read with the iptables front end's rules.
      const sets = [...this.ipsets.keys()].filter(isSymrouteIpsetName).sort();
      return { ...owned, ruleKeys: [...owned.ruleKeys, ...sets.map((n) => IPSET_KEY_PREFIX + n)] };
    });
  }

  private failFirewallRead(): void {
    if (this.faults.read === "firewall") throw readFailure("nft -j list table inet symroute");
  }

  private step(name: string): void {
    this.faults.beforeStep?.(name);
  }

  async runIpBatch(family: Family, lines: readonly string[]): Promise<void> {
    this.step(`ip${family}`);
    this.log.push({ tool: `ip -${family} -batch`, input: lines.join("\n") });
    const next = clone(this.state) as { -readonly [K in keyof NodeState]: NodeState[K] };
    for (let n = 0; n < lines.length; n++) {
      const line = lines[n] as string;
      try {
        if (this.faults.ipLine?.test(line) === true) fail("RTNETLINK answers: Invalid argument (injected)");
        this.applyLine(next, family, line);
      } catch (error) {
        // ip -batch keeps what ran before the failing line.
        this.state = next;
        throw new BatchError("kernel", `ip -batch - failed (exit 1): ${(error as Error).message}`, {
          tool: "ip",
          failedLine: n + 1,
          failedText: line,
          details: [(error as Error).message, `Command failed -:${n + 1}`],
        });
      }
    }
    this.state = next;
  }

  private applyLine(
    next: {
      links: NodeState["links"];
      routes: NodeState["routes"];
      rules: NodeState["rules"];
      sysctls: NodeState["sysctls"];
    },
    family: Family,
    line: string,
  ): void {
    if (/[\n"'`;$]/.test(line)) fail(`unsafe characters in batch line: ${line}`);
    const [object, verb, ...words] = line.split(" ");
    if (object === "route") {
      const parsed = parseRouteLine(family, words);
      if (verb === "del") {
        // As the kernel: a delete without a metric takes the first route of that identity, whatever
        // its metric.
        const key = routeKey({ ...parsed, metric: parsed.metric ?? 0 });
        const index = next.routes.findIndex(
          (r) => routeKey(parsed.metric === undefined ? { ...r, metric: 0 } : r) === key,
        );
        if (index < 0) fail("RTNETLINK answers: No such process");
        next.routes = next.routes.filter((_, i) => i !== index);
        return;
      }
      // As the kernel: an IPv6 route without a metric (or metric 0) gets 1024.
      const route: Route =
        family === 6 && (parsed.metric ?? 0) === 0 ? { ...parsed, metric: IPV6_DEFAULT_METRIC } : parsed;
      const key = routeKey(route);
      const index = next.routes.findIndex((r) => routeKey(r) === key);
      const link = route.dev === undefined ? undefined : next.links.find((l) => l.ifname === route.dev);
      if (route.dev !== undefined && link === undefined) fail(`Cannot find device "${route.dev}"`);
      // As the kernel: a unicast route through a link that is not up (IFF_UP) is refused.
      if (link !== undefined && !link.up && route.type === "unicast")
        fail(
          family === 4 && route.gateway === undefined
            ? "Error: Device for nexthop is not up."
            : "Error: Nexthop device is not up.",
        );
      if (route.gateway !== undefined && route.onlink !== true) {
        const gw = parseIp(route.gateway);
        const reachable = next.routes.some(
          (r) =>
            (r.table === route.table || r.table === 254) &&
            r.gateway === undefined &&
            r.dst !== "default" &&
            gw !== undefined &&
            prefixContainsIp(parsePrefix(r.dst) ?? fail("bad"), gw),
        );
        if (!reachable) fail("RTNETLINK answers: Network is unreachable");
      }
      if (verb === "add" && index >= 0) fail("RTNETLINK answers: File exists");
      if (index >= 0) next.routes = next.routes.map((r, i) => (i === index ? route : r));
      else next.routes = [...next.routes, route];
      return;
    }
    if (object === "rule") {
      const rule = parseRuleLine(family, words);
      const key = ruleKey(rule);
      // As the kernel (measured, 6.18): rules that differ only by protocol are not duplicates.
      const index = next.rules.findIndex((r) => ruleKey(r) === key && r.protocol === rule.protocol);
      if (verb === "del") {
        // As the kernel: the first rule (by priority) that has every attribute the line gives.
        const index = next.rules.findIndex((r) => r.family === family && deleteSelects(rule, r));
        if (index < 0) fail("RTNETLINK answers: No such file or directory");
        next.rules = next.rules.filter((_, i) => i !== index);
      } else {
        if (index >= 0) fail("RTNETLINK answers: File exists");
        // As the kernel: a goto only jumps forward; one to a priority no rule has yet is accepted
        // (listed "unresolved") and ignored by the walk until such a rule exists.
        if (rule.action === "goto" && (rule.goto ?? 0) <= rule.priority)
          fail("Error: Backward goto not supported.");
        next.rules = [...next.rules, rule].sort((a, b) => a.family - b.family || a.priority - b.priority);
      }
      return;
    }
    if (object === "link") {
      if (verb === "add") {
        const name = words[words.indexOf("name") + 1] as string;
        const parent = words[words.indexOf("link") + 1] as string;
        if (!next.links.some((l) => l.ifname === parent)) fail(`Cannot find device "${parent}"`);
        const id = Number(words[words.indexOf("id") + 1]);
        const ifindex = Math.max(0, ...next.links.map((l) => l.ifindex)) + 1;
        next.links = [
          ...next.links,
          { ifname: name, ifindex, up: false, kind: "vlan", link: parent, vlanId: id },
        ];
        next.sysctls = {
          ...next.sysctls,
          [`net/ipv4/conf/${name}/rp_filter`]: next.sysctls["net/ipv4/conf/default/rp_filter"] ?? "0",
        };
      } else if (verb === "set") {
        const name = words[0];
        const up = words[1] !== "down";
        next.links = next.links.map((l) => (l.ifname === name ? { ...l, up } : l));
      } else if (verb === "del") {
        const name = words[0];
        next.links = next.links.filter((l) => l.ifname !== name);
        next.routes = next.routes.filter((r) => r.dev !== name);
        // As the kernel: the link's /proc/sys/net/ipv*/conf/NAME goes with it.
        next.sysctls = Object.fromEntries(
          Object.entries(next.sysctls).filter(
            ([n]) => !(n.startsWith("net/ipv") && n.split("/")[3] === name),
          ),
        );
      }
      return;
    }
    fail(`Object "${String(object)}" is unknown`);
  }

  async runNft(script: string): Promise<void> {
    this.step("nft");
    this.log.push({ tool: "nft -f", input: script });
    if (this.faults.nft === true)
      throw new BatchError("kernel", "nft -f - failed (exit 1): Error: injected", {
        tool: "nft",
        failedLine: 5,
        failedText: script.split("\n")[4]?.trim() ?? "?",
        details: ["/dev/stdin:5:1-3: Error: injected"],
      });
    // As nft: the whole script is checked before any of it lands.
    try {
      const tables = checkNftScript(script, this.nftTables);
      const ruleset = applyNftScript(this.nftRuleset, script);
      this.nftTables = tables;
      this.nftRuleset = ruleset;
    } catch (error) {
      if (!(error instanceof NftRefusal)) throw error;
      throw new BatchError(
        "kernel",
        `nft -f - failed (exit 1): /dev/stdin:${error.line}:1: Error: ${error.message}`,
        {
          tool: "nft",
          failedLine: error.line,
          failedText: script.split("\n")[error.line - 1]?.trim() ?? "?",
          details: [`/dev/stdin:${error.line}:1: Error: ${error.message}`],
        },
      );
    }
    // Each table a script deletes is replaced whole by what the script declares for it; a table a
    // partial transaction (any of its commands) holds what the model of its content says.
    const partial = /^(?:add (?:table|chain|rule)|flush chain|delete chain) \S+ symroute\b/m.test(script);
    const keysOfTable = (family: string): string[] | undefined => {
      if (partial)
        return [...(this.nftRuleset.get(`${family} symroute`)?.values() ?? [])].flatMap((c) =>
          c.rules.flatMap((r) => {
            const key = / comment "([^"]*)"$/.exec(r)?.[1];
            return key === undefined ? [] : [key];
          }),
        );
      if (!script.includes(`delete table ${family} symroute`)) return undefined;
      const block = /^table (\S+) symroute \{$/gm;
      const keys: string[] = [];
      for (const m of script.matchAll(block)) {
        if (m[1] !== family) continue;
        const rest = script.slice((m.index ?? 0) + m[0].length);
        const body = rest.slice(0, rest.search(/^\}$/m));
        for (const k of body.matchAll(/comment "([^"]*)"/g)) keys.push(k[1] as string);
      }
      return keys;
    };
    const ownTables = [keysOfTable("inet"), keysOfTable("netdev")];
    const inet = ownTables.every((k) => k === undefined) ? undefined : ownTables.flatMap((k) => k ?? []);
    const arp = keysOfTable("arp");
    const keysOf = (backend: FirewallBackend): string[] =>
      this.state.firewall.find((f) => f.backend === backend)?.ruleKeys.slice() ?? [];
    let nft = keysOf("nftables");
    let ipt = keysOf("iptables");
    if (inet !== undefined) nft = [...inet, ...nft.filter((k) => k.startsWith(ARP_KEY_PREFIX))];
    if (arp !== undefined) {
      const strip = (keys: string[]): string[] => keys.filter((k) => !k.startsWith(ARP_KEY_PREFIX));
      nft = [
        ...strip(nft),
        ...arp.filter((k) => arpKeyBackend(k) === "nftables").map((k) => ARP_KEY_PREFIX + k),
      ];
      ipt = [
        ...strip(ipt),
        ...arp.filter((k) => arpKeyBackend(k) === "iptables").map((k) => ARP_KEY_PREFIX + k),
      ];
    }
    this.setFirewall("nftables", nft);
    if (arp !== undefined && (ipt.length > 0 || this.state.firewall.some((f) => f.backend === "iptables")))
      this.setFirewall("iptables", ipt);
  }

  async runIptablesRestore(family: Family, payload: string): Promise<void> {
    this.step(`iptables${family}`);
    this.log.push({ tool: `iptables-restore -${family}`, input: payload });
    const tool = family === 4 ? "iptables-restore" : "ip6tables-restore";
    const refused = (line: number, message: string): BatchError =>
      new BatchError("kernel", `${tool} --noflush -w 5 failed (exit 1): ${message}`, {
        tool,
        failedLine: line,
        failedText: payload.split("\n")[line - 1] ?? "?",
        details: [message],
      });
    if (this.faults.iptables === true) throw refused(3, `${tool}: line 3 failed (injected)`);
    // As iptables-restore: the payload commits whole, or nothing of it does.
    let chainsAfter: ReadonlySet<string>;
    try {
      chainsAfter = checkIptablesRestore(payload, this.iptablesChains[family]);
    } catch (error) {
      if (error instanceof IptablesRefusal) throw refused(error.line, error.message);
      throw error;
    }
    const all = this.state.firewall.find((f) => f.backend === "iptables")?.ruleKeys ?? [];
    const mine = all.filter((k) => k.startsWith(`${family}:`)).map((k) => k.slice(2));
    // Rules of the built-in chains, by their labels, and the chain each one jumps to: the layouts'
    // before (fixed labels), and the current ones (an interface or the mask in the label).
    const JUMPS: Record<string, string> = {
      "symroute prerouting": "SYMROUTE-PRE",
      "symroute output": "SYMROUTE-OUT",
      "symroute guard": "SYMROUTE-GUARD",
    };
    const targetOf = (k: string): string | undefined => {
      const fixed = Object.entries(JUMPS).find(([label]) => k.startsWith(`${label} #`))?.[1];
      if (fixed !== undefined) return fixed;
      const guard = /^symroute guard (\S+) #/.exec(k);
      if (guard !== null) return `SYMROUTE-G-${guard[1]}`;
      if (/^symroute classify \S+ #/.test(k)) return "SYMROUTE-CLASSIFY";
      const replies = /^symroute (local )?(?:replies|restore) \S+ #/.exec(k);
      if (replies !== null) return replies[1] === undefined ? "SYMROUTE-PRE" : "SYMROUTE-OUT";
      return undefined;
    };
    let jumps = mine.filter((k) => targetOf(k) !== undefined);
    let chains = mine.filter((k) => targetOf(k) === undefined);
    const refs = new Map<string, string>();
    const payloadLines = payload.split("\n");
    for (let n = 0; n < payloadLines.length; n++) {
      const line = payloadLines[n] as string;
      const fail = (message: string): never => {
        throw refused(n + 1, `${tool}: line ${n + 1} failed: ${message}`);
      };
      const key = /--comment "([^"]*)"/.exec(line)?.[1];
      const set = /--(?:match|map)-set (\S+)/.exec(line)?.[1];
      if (set !== undefined) {
        // As xt_set: a rule can only refer to a set that exists, of the table's family.
        const found = this.ipsets.get(set);
        if (found === undefined || found.family !== family) fail(`Set ${set} doesn't exist.`);
        if (key !== undefined) refs.set(`${family}:${key}`, set);
      }
      if (line.startsWith(":SYMROUTE-"))
        chains = []; // declaring a chain flushes it (every payload declares all of ours)
      else if (line.startsWith("-X SYMROUTE-")) {
        const chain = line.slice(3);
        if (jumps.some((k) => targetOf(k) === chain)) fail("Device or resource busy (chain in use)");
      } else if (key === undefined) continue;
      else if (line.startsWith("-A ")) chains.push(key);
      else if (line.startsWith("-I ")) {
        if (jumps.includes(key)) fail("duplicate jump (the fake keeps one per key)");
        jumps.push(key);
      } else if (line.startsWith("-D ")) {
        if (!jumps.includes(key)) fail("Bad rule (does a matching rule exist in that chain?)");
        jumps = jumps.filter((k) => k !== key);
      }
    }
    const others = all.filter((k) => !k.startsWith(`${family}:`));
    this.iptablesChains[family] = chainsAfter;
    this.setFirewall("iptables", [...others, ...[...jumps, ...chains].map((k) => `${family}:${k}`)]);
    for (const k of [...this.setRefs.keys()]) if (k.startsWith(`${family}:`)) this.setRefs.delete(k);
    for (const [k, set] of refs) this.setRefs.set(k, set);
  }

  async runIpsetRestore(payload: string): Promise<void> {
    this.step("ipset");
    this.log.push({ tool: "ipset restore", input: payload });
    if (!this.ipsetInstalled)
      throw new SymrouteError("dependency", "ipset is not installed", {
        hint: "install the Debian package ipset",
      });
    const lines = payload.split("\n").filter((l) => l !== "");
    for (const [n, line] of lines.entries()) {
      try {
        if (this.faults.ipsetLine?.test(line) === true) fail("Kernel error received: injected");
        this.applyIpsetLine(line);
      } catch (error) {
        // ipset restore keeps what ran before the failing line, like ip -batch.
        const message = `ipset v7.17: Error in line ${n + 1}: ${(error as Error).message}`;
        throw new BatchError("kernel", `ipset restore -exist failed (exit 1): ${message}`, {
          tool: "ipset",
          failedLine: n + 1,
          failedText: line,
          details: [message],
        });
      }
    }
  }

  /** One `ipset restore -exist` line: create/flush/add/swap/destroy, as ipset checks them. */
  private applyIpsetLine(line: string): void {
    if (/[\n"'`;$]/.test(line)) fail(`unsafe characters: ${line}`);
    const [verb, name = "", ...rest] = line.split(" ");
    if (!/^[A-Za-z0-9_.:-]{1,31}$/.test(name)) fail("Syntax error: bad set name");
    const set = this.ipsets.get(name);
    const needSet = (): FakeIpset => set ?? fail("The set with the given name does not exist");
    switch (verb) {
      case "create": {
        const params = rest.join(" ");
        const m = /^hash:net,iface family (inet|inet6)( skbinfo)?$/.exec(params);
        if (m === null) fail(`Syntax error: unsupported create parameters ${params}`);
        if (set !== undefined) {
          if (set.params !== params) fail("Set cannot be created: set with the same name already exists");
          return;
        }
        this.ipsets.set(name, { params, family: m[1] === "inet" ? 4 : 6, elements: new Set() });
        return;
      }
      case "flush":
        needSet().elements.clear();
        return;
      case "add": {
        const target = needSet();
        const [element = "", ...extra] = rest;
        const m = /^([^,]+),([A-Za-z0-9_.-]{1,15})$/.exec(element);
        const prefix = m === null ? undefined : canonicalPrefix(m[1] as string, target.family);
        if (m === null || prefix === undefined)
          fail(`Syntax error: Second element is missing from ${element}`);
        const skbinfo = target.params.endsWith(" skbinfo");
        if (extra.length > 0 && !(skbinfo && /^skbmark 0x[0-9a-f]+\/0x[0-9a-f]+$/.test(extra.join(" "))))
          fail(`Syntax error: cannot parse ${extra.join(" ")}`);
        target.elements.add([`${prefix},${m[2] as string}`, ...extra].join(" "));
        return;
      }
      case "swap": {
        const other = rest[0] ?? "";
        const b = this.ipsets.get(other) ?? fail("The set with the given name does not exist");
        const a = needSet();
        if (a.params !== b.params) fail("The sets cannot be swapped: their type does not match");
        this.ipsets.set(name, b);
        this.ipsets.set(other, a);
        return;
      }
      case "destroy":
        if (set === undefined) return; // -exist
        if ([...this.setRefs.values()].includes(name))
          fail("Set cannot be destroyed: it is in use by a kernel component");
        this.ipsets.delete(name);
        return;
      default:
        fail(`Syntax error: unknown command ${String(verb)}`);
    }
  }

  async ipsetAvailable(): Promise<boolean> {
    return this.ipsetInstalled;
  }

  private setFirewall(backend: FirewallBackend, ruleKeys: string[]): void {
    this.state = {
      ...this.state,
      firewall: [...this.state.firewall.filter((f) => f.backend !== backend), { backend, ruleKeys }],
    };
  }

  async writeSysctls(values: readonly (readonly [string, string])[]): Promise<void> {
    this.step("sysctl");
    for (const [name, value] of values) {
      if (this.faults.sysctl === name)
        throw new SymrouteError("permission", `could not set ${name}: EACCES (injected)`);
      if (!(name in this.state.sysctls)) throw new SymrouteError("kernel", `could not set ${name}: ENOENT`);
      const sysctls: Record<string, string> = { ...this.state.sysctls, [name]: value };
      const m = /^net\/ipv4\/conf\/default\/(.+)$/.exec(name);
      if (m !== null) {
        // As the kernel does: writing conf/default copies the value into every interface that never
        // set its own.
        for (const l of this.state.links) {
          const n = `net/ipv4/conf/${l.ifname}/${m[1]}`;
          if (n in sysctls && !this.explicit.has(n)) sysctls[n] = value;
        }
      } else {
        this.explicit.add(name);
      }
      this.state = { ...this.state, sysctls };
    }
  }

  async iptablesMangleExists(_family: Family): Promise<boolean> {
    return true;
  }

  async dropEmptyIptablesMangle(_family: Family): Promise<void> {}

  async iptablesBaseChainsAbsent(_family: Family, _chains: readonly string[]): Promise<string[]> {
    return [];
  }

  async dropEmptyIptablesChain(_family: Family, _chain: string): Promise<void> {}

  async availableFirewalls(): Promise<readonly FirewallBackend[]> {
    return this.firewalls;
  }
}

/** A small node like the article's: eth0 with the default route, ext0 without an address. */
export function articleNode(): NodeState {
  return {
    links: [
      { ifname: "lo", ifindex: 1, up: true },
      { ifname: "eth0", ifindex: 2, up: true, kind: "veth" },
      { ifname: "ext0", ifindex: 3, up: true, kind: "veth" },
    ],
    addresses: [
      { ifname: "lo", family: 4, local: "127.0.0.1", prefixlen: 8 },
      { ifname: "eth0", family: 4, local: "192.168.1.10", prefixlen: 24 },
    ],
    routes: [
      {
        family: 4,
        table: 254,
        type: "unicast",
        dst: "default",
        gateway: "192.168.1.1",
        dev: "eth0",
        protocol: 3,
        scope: 0,
      },
      {
        family: 4,
        table: 254,
        type: "unicast",
        dst: "192.168.1.0/24",
        dev: "eth0",
        protocol: 2,
        scope: 253,
        prefsrc: "192.168.1.10",
      },
    ],
    rules: [
      { family: 4, priority: 0, action: "lookup", table: 255 },
      { family: 4, priority: 32766, action: "lookup", table: 254 },
      { family: 4, priority: 32767, action: "lookup", table: 253 },
      { family: 6, priority: 0, action: "lookup", table: 255 },
      { family: 6, priority: 32766, action: "lookup", table: 254 },
    ],
    sysctls: {
      "net/ipv4/conf/all/rp_filter": "1",
      "net/ipv4/conf/default/rp_filter": "0",
      "net/ipv4/conf/lo/rp_filter": "0",
      "net/ipv4/conf/eth0/rp_filter": "0",
      "net/ipv4/conf/ext0/rp_filter": "0",
      "net/ipv4/conf/all/arp_ignore": "0",
      "net/ipv4/conf/all/arp_announce": "0",
    },
    firewall: [],
    kubeProxy: { iptablesChains: true, nftablesTable: false, ipvsLink: false },
  };
}
