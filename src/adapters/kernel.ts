// The real node: iproute2 to read and write routing, nft or iptables for symroute's firewall
// objects, /proc/sys for sysctls. One process per tool per step, never one per object.

import { constants, readFileSync } from "node:fs";
import { access, writeFile, readdir } from "node:fs/promises";
import type { Family } from "../model/address.ts";
import { fileErrorText } from "./file-error.ts";
import { SymrouteError, isSymrouteError } from "../model/errors.ts";
import { isSymrouteIpsetName } from "../model/tokens.ts";
import type {
  AttachedProgram,
  DatapathTraces,
  FirewallBackend,
  KubeProxyHints,
  NodeState,
  OwnedFirewall,
} from "../model/state.ts";
import { BatchError, type Kernel, type ReadScope } from "../engine/ports.ts";
import { ARP_KEY_PREFIX, IPSET_KEY_PREFIX, IPT_CHAIN_PREFIX, arpKeyBackend } from "../model/firewall.ts";
import type { DnatService, KubeProxyServices } from "../model/services.ts";
import { IPSET_SOCKET_REFUSED, runTool, toolError, type ToolResult, type ToolRunner } from "./exec.ts";
import { parseIptablesNatServices, parseNftKubeProxyServices } from "./kube-proxy-parse.ts";
import { parseAddresses, parseLinks, parseNeighbours, parseRoutes, parseRules } from "./iproute2-parse.ts";
import {
  BPF_GLOBALS_DIR,
  IPSET_READ_ARGS,
  IPTABLES_READ_ARGS,
  KUBE_PROXY_IPTABLES_ARGS,
  KUBE_PROXY_NFT_ARGS,
  NFT_ARP_READ_ARGS,
  NFT_GUARD_READ_ARGS,
  NFT_READ_ARGS,
  batchInput,
  ipReadArgs,
  ipReadCommands,
  routeReadCommands,
  ruleReadCommands,
  kubeProxyNftArgs,
  tcIngressArgs,
} from "./node-reads.ts";
import { counted } from "../model/plural.ts";

type Json = Record<string, unknown>;

interface LinuxKernelOptions {
  readonly run?: ToolRunner;
  /** Root of the sysctl tree; tests may point it elsewhere. */
  readonly procSys?: string;
  /** Where BPF maps are pinned (node-reads.ts BPF_GLOBALS_DIR); tests may point it elsewhere. */
  readonly bpfGlobals?: string;
  /** Told the process id of every tool started (runTool's onSpawn). */
  readonly onSpawn?: (pid: number) => void;
}

function parseJsonArray(text: string, what: string): Json[] {
  try {
    const value: unknown = JSON.parse(text === "" ? "[]" : text);
    return Array.isArray(value) ? (value as Json[]) : [];
  } catch (cause) {
    throw new SymrouteError("kernel", `could not parse the output of ${what}`, { cause });
  }
}

/** `Command failed -:3` in ip's stderr names the batch line that failed. */
function failedBatchLine(stderr: string): number | undefined {
  const m = /Command failed [^:\n]*:(\d+)/.exec(stderr);
  return m === null ? undefined : Number(m[1]);
}

/** What the tools print when this user may not read the ruleset. */
const PERMISSION_DENIED = /Operation not permitted|Permission denied|must be root/i;
/** nft's answer (measured, nft 1.0.6) to `list table` for a table that does not exist. */
const NFT_NO_TABLE = /^Error: (?:Could not process rule: )?No such file or directory/m;

/**
 * ipset's answers when the kernel has no ip_set: no netfilter netlink socket at all ("Cannot open
 * session to kernel."), or nfnetlink without the ip_set subsystem, which answers EINVAL to the
 * protocol message ipset sends before any command (ip_set's dump of every set has no EINVAL of
 * its own for ipset's well-formed request).
 */
const IPSET_NO_KERNEL_SUPPORT = /Cannot open session to kernel|Kernel error received: Invalid argument/;

/** What iptables-nft prints, with exit 0, for a table holding a rule it cannot show. */
const INCOMPATIBLE_TABLE = /^# Table `[^']*' is incompatible/m;

/**
 * A listing of symroute's objects that failed for a reason that does not mean "none of them": an
 * error naming the command, what it could not tell, and the next step.
 */
function unreadableListing(
  tool: string,
  args: readonly string[],
  result: ToolResult,
  what: string,
  repair: string,
): SymrouteError {
  const command = `${tool} ${args.join(" ")}`;
  const stderr = result.stderr.trim();
  return new SymrouteError(
    "kernel",
    `${command} failed (exit ${result.code}): symroute cannot tell which of ${what}`,
    {
      details: stderr === "" ? [] : stderr.split("\n"),
      hint: `run \`${command}\` to see why and repair ${repair}, then run symroute again`,
    },
  );
}

export function createLinuxKernel(options: LinuxKernelOptions = {}): Kernel {
  const runner = options.run ?? runTool;
  const { onSpawn } = options;
  const run: ToolRunner =
    onSpawn === undefined
      ? runner
      : (file, args, runOptions = {}) => runner(file, args, { ...runOptions, onSpawn });
  const procSys = options.procSys ?? "/proc/sys";
  const bpfGlobals = options.bpfGlobals ?? BPF_GLOBALS_DIR;

  let available: Promise<readonly FirewallBackend[]> | undefined;
  let ipset: Promise<boolean> | undefined;

  /** One `ip -j -N -d -batch -` with several show commands: their outputs, in order. */
  const ipBatchJson = async (family: Family, commands: string[]): Promise<Json[][]> => {
    const args = ipReadArgs(family);
    const result = await run("ip", args, { input: batchInput(commands) });
    const lines = result.stdout.split("\n").filter((l) => l.trim() !== "");
    if (lines.length !== commands.length) {
      throw new SymrouteError(
        "kernel",
        `ip ${args.join(" ")} printed ${lines.length} answers to ${commands.length} commands`,
        {
          details: [result.stderr.trim()].filter((x) => x !== ""),
        },
      );
    }
    return lines.map((line, i) => parseJsonArray(line, `ip -${family} -j ${commands[i] ?? ""}`));
  };

  const readSysctl = (name: string): string | undefined => readSysctlFile(procSys, name);

  /** The rules of one nft table of ours; [] when it does not exist, undefined when nft is not installed. */
  const readNftKeys = async (args: readonly string[]): Promise<NftRule[] | undefined> => {
    const result = await run("nft", args, { allowFailure: true }).catch((error: unknown) => {
      // No nft at all (an iptables-only node): nothing of ours can be in its tables.
      if (isSymrouteError(error) && error.kind === "dependency") return undefined;
      throw error;
    });
    if (result === undefined) return undefined;
    if (result.code !== 0) {
      // Only an absent table is "nothing of ours"; any other failure would make the next apply
      // plan from an empty firewall (and a delete leave symroute's table behind).
      if (NFT_NO_TABLE.test(result.stderr)) return [];
      if (/Operation not permitted|Permission denied/i.test(result.stderr))
        throw toolError("nft", args, result);
      throw unreadableListing("nft", args, result, "its rules are in that table", "nftables");
    }
    return nftRulesFromText(result.stdout);
  };

  /** The ARP table's rules that belong with `backend` (the rule's label names its front end). */
  const arpRulesOf = (rules: readonly NftRule[] | undefined, backend: FirewallBackend): NftRule[] =>
    (rules ?? [])
      .filter((r) => r.key !== undefined && arpKeyBackend(r.key) === backend)
      .map((r) => ({ key: ARP_KEY_PREFIX + (r.key ?? ""), content: ARP_KEY_PREFIX + r.content }));

  const readNftOwned = async (arp: Promise<NftRule[] | undefined>): Promise<OwnedFirewall | undefined> => {
    const [own, guards] = await Promise.all([readNftKeys(NFT_READ_ARGS), readNftKeys(NFT_GUARD_READ_ARGS)]);
    if (own === undefined) return undefined;
    const rules = [...own, ...(guards ?? []), ...arpRulesOf(await arp, "nftables")];
    return {
      backend: "nftables",
      ruleKeys: rules.flatMap((r) => (r.key === undefined ? [] : [r.key])),
      contents: rules.map((r) => r.content),
    };
  };

  /**
   * Whether nft shows a chain of symroute's in table mangle of `family` (a jump of its needs one).
   * Asked only when iptables-nft cannot list that table; no nft, or an unreadable table: true.
   */
  const symrouteChainsHiddenFrom = async (family: Family): Promise<boolean> => {
    const args = ["list", "table", family === 4 ? "ip" : "ip6", "mangle"];
    const result = await run("nft", args, { allowFailure: true }).catch(() => undefined);
    if (result === undefined) return true;
    if (result.code !== 0) return !/No such file or directory|does not exist/i.test(result.stderr);
    return new RegExp(`^\\s*chain ${IPT_CHAIN_PREFIX}`, "m").test(result.stdout);
  };

  const readIptablesOwned = async (
    arp: Promise<NftRule[] | undefined>,
  ): Promise<OwnedFirewall | undefined> => {
    const sets_ = readIpsets();
    sets_.catch(() => undefined); // awaited below
    const keys: string[] = [];
    const contents: string[] = [];
    const tools = ["iptables-save", "ip6tables-save"] as const;
    // Both families at once; their keys in family order.
    const results = await Promise.all(
      tools.map((tool) => run(tool, IPTABLES_READ_ARGS, { allowFailure: true })),
    );
    for (const [i, result] of results.entries()) {
      const family = i === 0 ? 4 : 6;
      const tool = tools[i] as string;
      if (result.code !== 0) {
        // A listing cut short (no raw socket for its sets) must not read as "nothing of ours".
        if (
          /Permission denied|Operation not permitted/i.test(result.stderr) ||
          IPSET_SOCKET_REFUSED.test(result.stderr)
        )
          throw toolError(tool, IPTABLES_READ_ARGS, result);
        // iptables-legacy without its kernel table: nothing can be in it. iptables-nft that fails
        // on a table where nft shows no chain of symroute's: no jump of its can be there either
        // (a node on nftables is not held up by an iptables it does not use).
        if (/Table does not exist/i.test(result.stderr)) continue;
        if (/\(nf_tables\)/.test(result.stderr) && !(await symrouteChainsHiddenFrom(family))) continue;
        // Anything else would read as "nothing of ours": the next apply would insert the jumps
        // from the built-in chains a second time (iptables keeps duplicates).
        throw unreadableListing(
          tool,
          IPTABLES_READ_ARGS,
          result,
          `its rules are in IPv${family} table mangle`,
          "iptables",
        );
      }
      if (INCOMPATIBLE_TABLE.test(result.stdout)) {
        // iptables-nft lists nothing of a table that holds a rule it cannot show (added with nft
        // by another tool) and still exits 0; nft sees whether symroute has a chain in it.
        if (await symrouteChainsHiddenFrom(family))
          throw new SymrouteError(
            "kernel",
            `${tool} ${IPTABLES_READ_ARGS.join(" ")} cannot list IPv${family} table mangle (a rule in it was added with nft and iptables cannot show it), and symroute's chains are in it: symroute cannot see its own rules`,
            {
              details: result.stdout.trim().split("\n").slice(0, 3),
              hint: `see the rule with \`nft list table ${family === 4 ? "ip" : "ip6"} mangle\`; move it to a table of its own (or remove it), or use firewall: nftables, then run symroute again`,
            },
          );
        continue;
      }
      for (const line of result.stdout.split("\n")) {
        // Rules in our chains, and jumps to them from the built-in ones.
        const ours =
          line.startsWith(`-A ${IPT_CHAIN_PREFIX}`) ||
          (line.startsWith("-A ") && / -[jg] SYMROUTE-\S+$/.test(line));
        if (!ours) continue;
        const m = /--comment (?:"([^"]*)"|(\S+))/.exec(line);
        keys.push(`${family}:${m?.[1] ?? m?.[2] ?? `uncommented ${line}`}`);
        contents.push(`${family}:${line.replace(/^\[\d+:\d+\] /, "").trim()}`);
      }
    }
    const arpRules = arpRulesOf(await arp, "iptables");
    const sets = ipsetsFromSave(await sets_);
    return {
      backend: "iptables",
      ruleKeys: [...keys, ...sets.keys, ...arpRules.flatMap((r) => (r.key === undefined ? [] : [r.key]))],
      contents: [...contents, ...sets.contents, ...arpRules.map((r) => r.content)],
    };
  };

  /** `ipset save`'s output ("" when ipset is not installed or the kernel has no ip_set). */
  const readIpsets = async (): Promise<string> => {
    const result = await run("ipset", IPSET_READ_ARGS, { allowFailure: true }).catch((error: unknown) => {
      // No ipset at all: nothing of ours can be in the kernel's sets.
      if (isSymrouteError(error) && error.kind === "dependency") return undefined;
      throw error;
    });
    if (result === undefined) return "";
    if (result.code !== 0) {
      if (/Operation not permitted|Permission denied/i.test(result.stderr))
        throw toolError("ipset", IPSET_READ_ARGS, result);
      // A kernel without ip_set holds no sets either. Any other failure would read as "no sets of
      // ours": the next apply would create sets that exist, and a delete would leave them behind.
      if (IPSET_NO_KERNEL_SUPPORT.test(result.stderr)) return "";
      throw unreadableListing("ipset", IPSET_READ_ARGS, result, "its sets are in the kernel", "ipset");
    }
    return result.stdout;
  };

  /** kube-proxy's traces: its nft table, its iptables chains (started before the links are known). */
  const kubeProxyTraces = async (): Promise<Omit<KubeProxyHints, "ipvsLink">> => {
    const absent = { code: 1, stdout: "", stderr: "" };
    const [nft, ipt] = await Promise.all([
      run("nft", KUBE_PROXY_NFT_ARGS, { allowFailure: true }).catch(() => absent),
      run("iptables-save", KUBE_PROXY_IPTABLES_ARGS, { allowFailure: true }).catch(() => absent),
    ]);
    return {
      nftablesTable: nft.code === 0 && /table ip6? kube-proxy/.test(nft.stdout),
      iptablesChains: ipt.code === 0 && /^:KUBE-SERVICES /m.test(ipt.stdout),
    };
  };

  /**
   * kube-proxy's DNAT targets from its iptables and nftables rules, both families; a source that
   * cannot be read (tool missing, table absent) is named in `sources` and adds nothing.
   */
  const readKubeProxyServices = async (): Promise<KubeProxyServices> => {
    const reads = ([4, 6] as const).flatMap((family) => [
      {
        what: `${family === 4 ? "iptables" : "ip6tables"} nat`,
        tool: family === 4 ? "iptables-save" : "ip6tables-save",
        args: [...KUBE_PROXY_IPTABLES_ARGS],
        parse: (text: string) => parseIptablesNatServices(text, family),
      },
      {
        what: `nft table ${family === 4 ? "ip" : "ip6"} kube-proxy`,
        tool: "nft",
        args: kubeProxyNftArgs(family),
        parse: (text: string) => parseNftKubeProxyServices(text, family),
      },
    ]);
    const outputs = await Promise.all(
      reads.map((r) =>
        run(r.tool, r.args, { allowFailure: true }).catch((cause: unknown) => ({
          code: -1,
          stdout: "",
          stderr: String(cause),
        })),
      ),
    );
    const sources: string[] = [];
    const services: DnatService[] = [];
    for (const [i, r] of reads.entries()) {
      const out = outputs[i];
      if (out === undefined || out.code !== 0) {
        // Without privileges the tools fail as they do for a missing table: saying "absent" then
        // would claim kube-proxy DNATs nothing where symroute could not look.
        sources.push(
          `${r.what}: ${
            out?.code === -1
              ? `${r.tool} not available`
              : PERMISSION_DENIED.test(out?.stderr ?? "")
                ? `not readable (${r.tool}: permission denied; run as root)`
                : "absent"
          }`,
        );
        continue;
      }
      let found: DnatService[];
      try {
        found = r.parse(out.stdout);
      } catch {
        sources.push(`${r.what}: not readable`);
        continue;
      }
      sources.push(`${r.what}: ${counted(found.length, "DNAT'ed destination")}`);
      services.push(...found);
    }
    return { sources, services };
  };

  /**
   * Pinned maps (one directory listing), XDP programs (already in `ip -d link`), and tc ingress
   * programs of `interfaces`, the last only when Cilium or Calico shows in the first two or the
   * links: on an ordinary node this costs one readdir.
   */
  const readDatapath = async (
    linkJson: readonly Json[],
    interfaces: readonly string[],
  ): Promise<DatapathTraces> => {
    const pinnedMaps = (await readdir(bpfGlobals).catch(() => [] as string[])).sort();
    const programs: AttachedProgram[] = [];
    for (const l of linkJson) {
      const prog = (l["xdp"] as Json | undefined)?.["prog"] as Json | undefined;
      const name = prog?.["name"];
      if (typeof name === "string") programs.push({ ifname: String(l["ifname"]), hook: "xdp", name });
    }
    const names = linkJson.map((l) => String(l["ifname"]));
    const suspect =
      pinnedMaps.some((m) => m.startsWith("cilium_") || m.startsWith("cali_")) ||
      names.some((n) => n.startsWith("cilium_") || n.endsWith(".cali") || n.startsWith("bpfnat"));
    if (suspect) {
      const present = interfaces.filter((i) => names.includes(i));
      const outputs = await Promise.all(
        present.map((i) =>
          run("tc", tcIngressArgs(i), { allowFailure: true }).catch(() => ({
            code: 1,
            stdout: "",
            stderr: "",
          })),
        ),
      );
      for (const [k, out] of outputs.entries()) {
        if (out.code !== 0) continue;
        for (const f of parseJsonArray(out.stdout, "tc -j filter show")) {
          const options = f["options"] as Json | undefined;
          const progName = (options?.["prog"] as Json | undefined)?.["name"];
          const objName = options?.["bpf_name"];
          const name = [progName, objName].filter((x): x is string => typeof x === "string").join(" ");
          if (name !== "") programs.push({ ifname: present[k] as string, hook: "tc ingress", name });
        }
      }
    }
    return { pinnedMaps, programs, ...(suspect ? { kubeProxy: await kubeProxyTraces() } : {}) };
  };

  /** Each front end's reader of symroute's objects. */
  const readOwned: Record<
    FirewallBackend,
    (arp: Promise<NftRule[] | undefined>) => Promise<OwnedFirewall | undefined>
  > = { nftables: readNftOwned, iptables: readIptablesOwned };

  const readFirewall = async (backends: readonly FirewallBackend[]): Promise<OwnedFirewall[]> => {
    // The ARP table is read once for both front ends; each takes the keys labelled with its name.
    const arp = backends.length === 0 ? Promise.resolve(undefined) : readNftKeys(NFT_ARP_READ_ARGS);
    arp.catch(() => undefined); // awaited by the readers
    const read = await Promise.all(backends.map((backend) => readOwned[backend](arp)));
    return read.filter((f): f is OwnedFirewall => f !== undefined);
  };

  return {
    readFirewall,

    async readNode(scope: ReadScope): Promise<NodeState> {
      // Every reader at once: the cost of a read is the slowest tool, not the sum.
      const firewallReads = readFirewall(scope.firewalls);
      const traces = scope.kubeProxyHints === true ? kubeProxyTraces() : undefined;
      const services = scope.kubeProxyServices === true ? readKubeProxyServices() : undefined;
      services?.catch(() => undefined); // awaited below
      // Awaited below; until then a rejection must not count as unhandled.
      firewallReads.catch(() => undefined);
      // One process per family: `ip -batch` answers several commands, one JSON array per line; a
      // batch cannot switch family. One of them also lists the links.
      const families = scope.families ?? [4, 6];
      const linksFrom: Family = families.includes(6) && !families.includes(4) ? 6 : 4;
      const readFamily = async (family: Family): Promise<{ links?: Json[]; objects: Json[][] }> => {
        const commands = ipReadCommands({
          links: family === linksFrom,
          objects: families.includes(family),
          neighbours: scope.neighbours === true,
          routeTables: scope.routeTables,
          rulePriorities: scope.rulePriorities,
        });
        if (commands.length === 0) return { objects: [] };
        const out = await ipBatchJson(family, commands);
        const objects = family === linksFrom ? out.slice(1) : out;
        // addresses, the routes (one answer per table read), rules, neighbours: as one answer each.
        const tables = scope.routeTables;
        const routeAnswers = routeReadCommands(tables).length;
        // `ip -j route show table N` leaves the table out of each route (iproute2 6.1): put it back.
        const routes = objects
          .slice(1, 1 + routeAnswers)
          .flatMap((answer, i) =>
            tables === undefined
              ? answer
              : answer.map((r) => ("table" in r ? r : { ...r, table: tables[i] })),
          );
        // The rules likewise (one answer per priority read; each keeps its priority).
        const ruleAnswers = ruleReadCommands(scope.rulePriorities).length;
        const rules = objects.slice(1 + routeAnswers, 1 + routeAnswers + ruleAnswers).flat();
        const grouped =
          objects.length === 0
            ? []
            : [objects[0] ?? [], routes, rules, ...objects.slice(1 + routeAnswers + ruleAnswers)];
        return family === linksFrom ? { links: out[0] ?? [], objects: grouped } : { objects: grouped };
      };
      const [read4, read6] = await Promise.all([readFamily(4), readFamily(6)]);
      const linkJson = (linksFrom === 4 ? read4 : read6).links ?? [];
      const [addr4 = [], r4 = [], rules4 = [], neigh4 = []] = read4.objects;
      const [addr6 = [], r6 = [], rules6 = [], neigh6 = []] = read6.objects;
      const links = parseLinks(linkJson);
      const datapath =
        scope.datapath === undefined ? undefined : readDatapath(linkJson, scope.datapath.interfaces);
      datapath?.catch(() => undefined); // awaited below
      const names = new Set(scope.sysctls);
      for (const template of scope.linkSysctls ?? []) {
        for (const link of links) names.add(template.replace("{}", link.ifname));
      }
      const sysctls: Record<string, string> = {};
      for (const name of names) {
        const value = readSysctl(name);
        if (value !== undefined) sysctls[name] = value;
      }
      const firewall = await firewallReads;
      return {
        links,
        addresses: parseAddresses(addr4).concat(parseAddresses(addr6)),
        routes: parseRoutes(4, r4).concat(parseRoutes(6, r6)),
        rules: parseRules(4, rules4).concat(parseRules(6, rules6)),
        sysctls,
        firewall,
        ...(traces === undefined
          ? {}
          : { kubeProxy: { ipvsLink: links.some((l) => l.ifname === "kube-ipvs0"), ...(await traces) } }),
        ...(scope.neighbours === true
          ? { neighbours: parseNeighbours(4, neigh4).concat(parseNeighbours(6, neigh6)) }
          : {}),
        ...(datapath === undefined ? {} : { datapath: await datapath }),
        ...(services === undefined ? {} : { kubeProxyServices: await services }),
      };
    },

    async runIpBatch(family: Family, lines: readonly string[]): Promise<void> {
      if (lines.length === 0) return;
      const args = family === 6 ? ["-6", "-batch", "-"] : ["-batch", "-"];
      const result = await run("ip", args, { input: `${lines.join("\n")}\n`, allowFailure: true });
      if (result.code === 0) return;
      const lineNo = failedBatchLine(result.stderr);
      const error = toolError("ip", args, result);
      const failing = lineNo === undefined ? undefined : lines[lineNo - 1];
      const noVlan = /Unknown device type/.test(result.stderr) && failing?.includes(" type vlan ") === true;
      throw new BatchError(error.kind, error.message, {
        tool: "ip",
        ...(lineNo === undefined ? {} : { failedLine: lineNo }),
        ...(failing === undefined ? {} : { failedText: failing }),
        details: error.details,
        hint: noVlan
          ? "this kernel has no 802.1Q VLAN support: load it (modprobe 8021q), or create the interface another way and drop `vlan:`"
          : error.hint,
      });
    },

    async runNft(script: string): Promise<void> {
      const result = await run("nft", ["-f", "-"], { input: script, allowFailure: true });
      if (result.code === 0) return;
      const error = toolError("nft", ["-f", "-"], result);
      const m = /:(\d+):\d+/.exec(result.stderr);
      const lineNo = m === null ? undefined : Number(m[1]);
      throw new BatchError(error.kind, error.message, {
        tool: "nft",
        ...(lineNo === undefined
          ? {}
          : { failedLine: lineNo, failedText: script.split("\n")[lineNo - 1]?.trim() ?? "?" }),
        details: error.details,
        hint: error.hint,
      });
    },

    async runIptablesRestore(family: Family, payload: string): Promise<void> {
      const tool = family === 4 ? "iptables-restore" : "ip6tables-restore";
      const args = ["--noflush", "-w", "5"];
      const result = await run(tool, args, { input: payload, allowFailure: true });
      if (result.code === 0) return;
      const error = toolError(tool, args, result);
      const m = /line:? (\d+)/.exec(result.stderr);
      const lineNo = m === null ? undefined : Number(m[1]);
      throw new BatchError(error.kind, error.message, {
        tool,
        ...(lineNo === undefined
          ? {}
          : { failedLine: lineNo, failedText: payload.split("\n")[lineNo - 1] ?? "?" }),
        details: error.details,
        hint: error.hint,
      });
    },

    async runIpsetRestore(payload: string): Promise<void> {
      const args = ["restore", "-exist"];
      const result = await run("ipset", args, { input: payload, allowFailure: true });
      if (result.code === 0) return;
      const error = toolError("ipset", args, result);
      // "ipset v7.17: Error in line 3: ..." names the failing line.
      const m = /Error in line (\d+)/.exec(result.stderr);
      const lineNo = m === null ? undefined : Number(m[1]);
      const noKernel = /set type not supported|Protocol not supported|Cannot open session/i.test(
        result.stderr,
      );
      throw new BatchError(error.kind, error.message, {
        tool: "ipset",
        ...(lineNo === undefined
          ? {}
          : { failedLine: lineNo, failedText: payload.split("\n")[lineNo - 1] ?? "?" }),
        details: error.details,
        hint: noKernel
          ? "the kernel has no ip_set hash:net,iface support (modprobe ip_set_hash_netiface), or use firewall: nftables"
          : error.hint,
      });
    },

    ipsetAvailable(): Promise<boolean> {
      ipset ??= onPath("ipset");
      return ipset;
    },

    async writeSysctls(values): Promise<void> {
      for (const [name, value] of values) {
        try {
          await writeFile(`${procSys}/${name}`, value);
        } catch (cause) {
          const code = (cause as NodeJS.ErrnoException).code;
          throw new SymrouteError(
            code === "EACCES" || code === "EPERM" || code === "EROFS" ? "permission" : "kernel",
            `could not set ${name.replaceAll("/", ".")} to ${value} (${procSys}/${name}): ${fileErrorText(cause)}`,
            {
              cause,
              hint:
                code === "EACCES" || code === "EPERM" || code === "EROFS"
                  ? "run as root; in a container, /proc/sys must be writable (CAP_NET_ADMIN in the host network namespace)"
                  : code === "ENOENT"
                    ? "the interface it belongs to is gone (deleted while symroute ran?), or --proc-sys names another tree: check the link, then run again"
                    : undefined,
            },
          );
        }
      }
    },

    async iptablesMangleExists(family: Family): Promise<boolean> {
      // With iptables-nft the table is an nft table; with legacy iptables it always exists.
      const r = await run("nft", ["list", "table", family === 4 ? "ip" : "ip6", "mangle"], {
        allowFailure: true,
      }).catch(() => undefined);
      return r === undefined || r.code === 0 || !/No such file or directory/.test(r.stderr);
    },

    async iptablesBaseChainsAbsent(family: Family, chains: readonly string[]): Promise<string[]> {
      // iptables-nft makes a built-in chain on its first use, as an nft base chain; legacy iptables
      // has them all, and nft shows none of them (none is ever found made, so none is claimed).
      const wanted = chains.filter((c) => /^[A-Z]+$/.test(c));
      const r = await run("nft", ["list", "table", family === 4 ? "ip" : "ip6", "mangle"], {
        allowFailure: true,
      }).catch(() => undefined);
      // Unknown (no nft, an unreadable table): all there, never claimed, never dropped.
      if (r === undefined) return [];
      if (r.code !== 0) return /No such file or directory/.test(r.stderr) ? wanted : [];
      return wanted.filter((c) => !new RegExp(`^\\s*chain ${c} \\{`, "m").test(r.stdout));
    },

    async dropEmptyIptablesChain(family: Family, chain: string): Promise<void> {
      if (!/^[A-Z]+$/.test(chain)) return;
      const table = family === 4 ? "ip" : "ip6";
      const listed = await run("nft", ["list", "chain", table, "mangle", chain], { allowFailure: true });
      if (listed.code !== 0) return;
      // Only an empty chain with the policy iptables-nft gave it: a rule, or a policy set since,
      // is someone else's. nft refuses to delete a chain that holds rules (one added meanwhile).
      const lines = listed.stdout
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l !== "" && l !== "}" && !l.startsWith("table ") && !l.startsWith("chain "));
      const [hook, ...rules] = lines;
      if (rules.length > 0 || hook === undefined || !/^type .*; policy accept;$/.test(hook)) return;
      await run("nft", ["delete", "chain", table, "mangle", chain], { allowFailure: true });
    },

    async dropEmptyIptablesMangle(family: Family): Promise<void> {
      const tool = family === 4 ? "iptables-save" : "ip6tables-save";
      const saved = await run(tool, ["-t", "mangle"], { allowFailure: true });
      const inUse = saved.stdout
        .split("\n")
        .some(
          (l) =>
            l.startsWith("-A ") ||
            (l.startsWith(":") && !/^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /.test(l)),
        );
      if (saved.code !== 0 || inUse) return;
      await run("nft", ["delete", "table", family === 4 ? "ip" : "ip6", "mangle"], { allowFailure: true });
    },

    availableFirewalls(): Promise<readonly FirewallBackend[]> {
      // Installed tools do not come and go during a run: ask once.
      available ??= (async () => {
        // A look at PATH, not a process per tool: this runs on every plan.
        const [nft, ipt] = await Promise.all([onPath("nft"), onPath("iptables-restore")]);
        const found: FirewallBackend[] = [];
        if (nft) found.push("nftables");
        if (ipt) found.push("iptables");
        return found;
      })();
      return available;
    },
  };
}

export interface NftRule {
  /** Undefined for a base chain's `type ... hook ...` and `policy` lines, content without a key. */
  readonly key: string | undefined;
  /** The rule as nft lists it, counters zeroed: its content, compared against the record. */
  readonly content: string;
}

/** Every rule of `nft -t list table` output, with its comment key; a rule without one is drift. */
export function nftRulesFromText(text: string): NftRule[] {
  const rules: NftRule[] = [];
  let chain = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("chain ")) chain = line.slice(6).replace(/\s*\{$/, "");
    else if (line === "}") chain = "";
    else if (chain !== "" && line !== "" && !line.startsWith("type ") && !line.startsWith("policy ")) {
      const m = / comment "([^"]*)"$/.exec(line);
      rules.push({
        key: m?.[1] ?? `uncommented rule: ${line}`,
        content: `${chain}: ${line.replace(/counter packets \d+ bytes \d+/g, "counter")}`,
      });
    } else if (chain !== "" && (line.startsWith("type ") || line.startsWith("policy "))) {
      // A base chain's hook, priority and policy are content too.
      rules.push({ key: undefined, content: `${chain}: ${line}` });
    }
  }
  return rules;
}

/**
 * symroute's sets in `ipset save` output: a key per set, and each line canonical for drift
 * comparison (hash size, bucket size and the random initval are the kernel's, not content).
 */
function ipsetsFromSave(text: string): { keys: string[]; contents: string[] } {
  const keys: string[] = [];
  const contents: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^(create|add) (\S+)/.exec(line);
    if (m === null || !isSymrouteIpsetName(m[2] as string)) continue;
    if (m[1] === "create") keys.push(IPSET_KEY_PREFIX + (m[2] as string));
    const canonical = line.replace(/ (hashsize|bucketsize|initval) \S+/g, "").trim();
    contents.push(IPSET_KEY_PREFIX + canonical);
  }
  return { keys, contents };
}

/** Whether an executable of this name is on PATH (what spawning it would find). */
async function onPath(name: string): Promise<boolean> {
  for (const dir of (process.env["PATH"] ?? "").split(":")) {
    if (dir === "") continue;
    try {
      await access(`${dir}/${name}`, constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** Names of the interfaces with IPv4 conf entries: what `readdir(/proc/sys/net/ipv4/conf)` lists. */
/**
 * A sysctl's value from its file under `procSys` (undefined: absent on this node), read
 * synchronously: a file of /proc/sys is made in memory when read, so the read never waits, and with
 * a rp_filter per link a node read asks for dozens (one link per pod); as promises each cost four
 * turns of the event loop (open, stat, read, close).
 */
export function readSysctlFile(procSys: string, name: string): string | undefined {
  try {
    return readFileSync(`${procSys}/${name}`, "utf8").trim();
  } catch {
    return undefined;
  }
}

export async function listConfInterfaces(procSys = "/proc/sys"): Promise<string[]> {
  try {
    return await readdir(`${procSys}/net/ipv4/conf`);
  } catch {
    return [];
  }
}
