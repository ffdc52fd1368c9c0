// `symroute explain`: the kernel's routing decision for one packet, rule by rule, on the live node
// or on a snapshot; `symroute snapshot`: the node's routing state as JSON for a later explain.

import { readFile } from "node:fs/promises";
import { Command, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { listConfInterfaces } from "../../adapters/kernel.ts";
import { SymrouteError } from "../../model/errors.ts";
import { fileErrorText } from "../config-file.ts";
import type { FirewallBackend, NodeState } from "../../model/state.ts";
import {
  firewallRuleKeys,
  type FirewallSpec,
  type MarkEntry,
  type SpoofGuard,
} from "../../model/firewall.ts";
import { createNodeDeps } from "../deps.ts";
import { compileRoutingState } from "../../simulate/compile.ts";
import { formatTrace, formatRoute, formatRule } from "../../simulate/format.ts";
import { simulatorSysctls, tracePacket } from "../../simulate/trace.ts";
import type { Packet, Trace } from "../../simulate/types.ts";
import { protoName } from "../../simulate/format.ts";
import { canonicalIp } from "../../model/address.ts";
import { formatBackend, formatServiceAddress, type KubeProxyServices } from "../../model/services.ts";
import { parseAddressWords, parseWordPrefix, prefixMatches } from "../../simulate/words.ts";
import {
  EXIT,
  parseOutputFormat,
  parseStateDir,
  printJson,
  runAndExit,
  type OutputFormat,
} from "../output.ts";

/** explain's and snapshot's `--state-dir`: they read the state only for the guards apply made. */
const guardStateDirOption = () =>
  new Option(
    "--state-dir <dir>",
    "where symroute keeps its state, for the anti-spoofing guards it applied (default: /var/lib/symroute; unreadable there: no guards)",
  ).argParser(parseStateDir);

/** The snapshot file: the NodeState with a version, so that later formats can be told apart. */
export interface Snapshot {
  readonly version: 1;
  readonly node: NodeState;
  /** symroute's anti-spoofing guards that were on the node (absent in older snapshots: none). */
  readonly guards?: readonly SpoofGuard[];
  /**
   * symroute's firewall as it last applied it (marks, pools, guards), from its state: absent when
   * the state was not readable. The rules the kernel holds are in `node.firewall`.
   */
  readonly firewallSpec?: FirewallSpec;
}

const outputOption = () =>
  new Option("-o, --output <format>", "text or json")
    .default("text" as OutputFormat)
    .argParser(parseOutputFormat);

function invalid(message: string, hint?: string): SymrouteError {
  return new SymrouteError("invalid-argument", message, hint === undefined ? {} : { hint });
}

/** A bad option or combination of options: a usage error, whose hint names --help as commander's do. */
function usage(message: string, hint?: string): SymrouteError {
  const help = "see `symroute explain --help`";
  return invalid(message, hint === undefined ? help : `${hint} (${help})`);
}

function parseNumber(text: string, what: string, max: number): number {
  const value = /^0x[0-9a-f]+$/i.test(text)
    ? parseInt(text, 16)
    : /^[0-9]+$/.test(text)
      ? Number(text)
      : Number.NaN;
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw usage(`${what} must be a number from 0 to ${max} (decimal or 0x hex), not ${JSON.stringify(text)}`);
  }
  return value;
}

/**
 * A packet's mark: a number, or a mark as `plan` and `ip rule` print it (`0x1/0xff`), taken as its
 * value (the bits outside the mask 0), so that a network's mark can be pasted as it is.
 */
function parseMark(text: string): number {
  const slash = text.indexOf("/");
  if (slash < 0) return parseNumber(text, "--mark", 0xffffffff);
  const value = parseNumber(text.slice(0, slash), "--mark (value)", 0xffffffff);
  const mask = parseNumber(text.slice(slash + 1), "--mark (mask)", 0xffffffff);
  if ((value & ~mask) >>> 0 !== 0)
    throw usage(`--mark ${text}: the value has bits outside the mask`, "give the mark as `plan` prints it");
  return value;
}

/** An address option: the family it has, or an invalid-argument error naming the option. */
function addressFamily(text: string, option: string): number {
  const parsed = parseAddressWords(text);
  if (parsed === undefined)
    throw usage(`${option} must be an IPv4 or IPv6 address, not ${JSON.stringify(text)}`);
  return parsed.family;
}

/** The protocol names `--proto` takes (besides a number); its --help and the docs list these. */
export const PROTOCOLS: Readonly<Record<string, number>> = {
  tcp: 6,
  udp: 17,
  icmp: 1,
  "ipv6-icmp": 58,
  sctp: 132,
};

/** `--proto`: a name of PROTOCOLS or a number; the error lists the names, which the number's does not. */
function parseProto(text: string): number {
  const named = PROTOCOLS[text.toLowerCase()];
  if (named !== undefined) return named;
  if (!/^(0x[0-9a-f]+|[0-9]+)$/i.test(text))
    throw usage(
      `--proto must be ${Object.keys(PROTOCOLS).join(", ")} or a protocol number from 0 to 255, not ${JSON.stringify(text)}`,
    );
  return parseNumber(text, "--proto", 255);
}

interface ExplainOptions {
  readonly from?: string;
  readonly to: string;
  readonly iif?: string;
  readonly oif?: string;
  readonly mark?: string;
  readonly tos?: string;
  readonly proto?: string;
  readonly sport?: string;
  readonly dport?: string;
  readonly uid?: string;
  readonly dnatTo?: string;
}

/** Command-line options to a packet; errors name the option and the value. */
export function packetFromOptions(o: ExplainOptions): Packet {
  if ((o.sport !== undefined || o.dport !== undefined) && o.proto === undefined) {
    throw usage("--sport and --dport need --proto", "add --proto tcp or --proto udp");
  }
  const family = addressFamily(o.to, "--to");
  if (o.from !== undefined && addressFamily(o.from, "--from") !== family)
    throw usage(`--from ${o.from} and --to ${o.to} are of different families`);
  if (o.dnatTo !== undefined && addressFamily(o.dnatTo, "--dnat-to") !== family)
    throw usage(`--dnat-to ${o.dnatTo} and --to ${o.to} are of different families`);
  let ipproto: number | undefined;
  if (o.proto !== undefined) {
    ipproto = parseProto(o.proto);
  }
  const packet: Record<string, unknown> = { to: o.to };
  if (o.from !== undefined) packet["from"] = o.from;
  if (o.iif !== undefined) packet["iif"] = o.iif;
  if (o.oif !== undefined) packet["oif"] = o.oif;
  if (o.mark !== undefined) packet["mark"] = parseMark(o.mark);
  if (o.tos !== undefined) packet["tos"] = parseNumber(o.tos, "--tos", 255);
  if (ipproto !== undefined) packet["ipproto"] = ipproto;
  if (o.sport !== undefined) packet["sport"] = parseNumber(o.sport, "--sport", 65535);
  if (o.dport !== undefined) packet["dport"] = parseNumber(o.dport, "--dport", 65535);
  if (o.uid !== undefined) packet["uid"] = parseNumber(o.uid, "--uid", 0xfffffffe);
  if (o.dnatTo !== undefined) {
    if (o.iif === undefined)
      throw usage("--dnat-to needs --iif: kube-proxy's DNAT rewrites arriving packets");
    packet["dnatTo"] = o.dnatTo;
  }
  if (o.iif !== undefined && o.oif !== undefined)
    throw usage("--iif and --oif exclude each other: a packet either arrives or is sent");
  if (o.iif !== undefined && o.from === undefined)
    throw usage("--iif needs --from: an arriving packet has a source address");
  return packet as unknown as Packet;
}

/** An --iif or --oif the node (or snapshot) does not have: an error that lists those it has. */
export function checkInterfaces(packet: Packet, node: NodeState, where: string): void {
  for (const [option, name] of [
    ["--iif", packet.iif],
    ["--oif", packet.oif],
  ] as const) {
    if (name === undefined || node.links.some((l) => l.ifname === name)) continue;
    const names = node.links.map((l) => l.ifname);
    throw invalid(
      `${option}: no interface named ${name} on ${where}; its interfaces: ${names.length === 0 ? "none" : names.join(", ")}`,
    );
  }
}

/** What explain simulates: the node, and symroute's anti-spoofing guards on it. */
interface ExplainState {
  readonly node: NodeState;
  readonly guards: readonly SpoofGuard[];
  /** Guards symroute's state names that are not (all) on the node: left out, and said so. */
  readonly missingGuards: readonly SpoofGuard[];
  /** symroute's firewall as last applied (its pools: the addresses kube-proxy DNATs), if known. */
  readonly firewallSpec?: FirewallSpec;
  /**
   * No state was found, yet symroute's firewall is on the node (its state is elsewhere: another
   * --state-dir, the config's stateDir): the state file looked for and the front ends found.
   */
  readonly stateElsewhere?: { readonly file: string; readonly backends: readonly FirewallBackend[] };
}

/** Why an arriving packet's guard verdict may be missing: the state that names the guards was not found. */
export function stateElsewhereNote(
  packet: Packet,
  elsewhere: ExplainState["stateElsewhere"],
): readonly string[] {
  if (packet.iif === undefined || elsewhere === undefined) return [];
  return [
    `symroute's firewall (${elsewhere.backends.join(", ")}) is on this node, but there is no state file at ${elsewhere.file}: ` +
      `its anti-spoofing guards, which decide before routing for packets arriving on a pool's interface, are not simulated; ` +
      `give --state-dir the directory apply used (the configuration's stateDir, if it sets one)`,
  ];
}

const BACKENDS: readonly FirewallBackend[] = ["nftables", "iptables"];

/**
 * A destination in one of symroute's pools (a load-balancer address) without --dnat-to: kube-proxy
 * DNATs it to a backend before routing, which explain does not model, so the answer is about the
 * address itself; say so, and what to ask instead.
 */
export function dnatNotes(
  packet: Packet,
  entries: readonly MarkEntry[],
  guards: readonly SpoofGuard[],
  read?: KubeProxyServices,
): string[] {
  if (packet.dnatTo !== undefined) return [];
  const dst = parseAddressWords(packet.to);
  if (dst === undefined) return [];
  const pools = [
    ...entries.map((e) => ({ family: e.family, pools: e.pools, where: `network ${e.network} on ${e.iif}` })),
    ...guards.map((g) => ({ family: g.family, pools: g.exempt, where: g.iif })),
  ];
  for (const { family, pools: list, where } of pools) {
    if (family !== dst.family) continue;
    const pool = list.find((p) => {
      const prefix = parseWordPrefix(p, family);
      return prefix !== undefined && prefixMatches(prefix, dst.words);
    });
    if (pool === undefined) continue;
    const how =
      packet.iif === undefined
        ? `--to BACKEND (the pod's address)`
        : `--dnat-to BACKEND (the pod's address kube-proxy chose; the guard still sees ${packet.to})`;
    return [
      `${packet.to} is in ${pool}, a pool of ${where}: kube-proxy DNATs packets to it to a backend before routing, and explain does not model that DNAT without kube-proxy's rules for it (${read === undefined ? "none were read" : `none found: ${read.sources.join("; ")}`}), so this answer is for ${packet.to} itself; ask about the backend with ${how}`,
    ];
  }
  return [];
}

/** kube-proxy's DNAT of a packet's destination, as the node's rules (or the snapshot) have it. */
interface DnatResolution {
  /** The destination as asked. */
  readonly address: string;
  /** Each matching service and backend: `1.2.3.4:80/tcp → 10.112.0.5:8080`. */
  readonly services: readonly string[];
  /** The distinct backend addresses, in the rules' order. */
  readonly backends: readonly string[];
  /** The backend the packet is traced to (the first). */
  readonly traced: string;
}

/**
 * The DNAT kube-proxy applies to the packet's destination (protocol and port taken into account
 * when given), read from its rules; undefined when --dnat-to was given or no rule DNATs it.
 */
function resolveDnat(packet: Packet, read: KubeProxyServices | undefined): DnatResolution | undefined {
  if (read === undefined || packet.dnatTo !== undefined) return undefined;
  const address = canonicalIp(packet.to);
  if (address === undefined) return undefined;
  const proto = packet.ipproto === undefined ? undefined : protoName(packet.ipproto);
  const matching = read.services.filter(
    (s) =>
      s.address === address &&
      (proto === undefined || s.proto === undefined || s.proto === proto) &&
      (packet.dport === undefined || s.port === undefined || s.port === packet.dport),
  );
  const backends = [...new Set(matching.flatMap((s) => s.backends.map((b) => b.address)))];
  const traced = backends[0];
  if (traced === undefined) return undefined;
  const services = matching.flatMap((s) =>
    s.backends.map((b) => `${formatServiceAddress(s)} → ${formatBackend(s.family, b)}`),
  );
  return { address, services, backends, traced };
}

/** The packet as routing sees it after kube-proxy's DNAT: arriving, `dnatTo`; sent locally, the new `to`. */
function dnatPacket(packet: Packet, dnat: DnatResolution | undefined): Packet {
  if (dnat === undefined) return packet;
  return packet.iif === undefined ? { ...packet, to: dnat.traced } : { ...packet, dnatTo: dnat.traced };
}

/** What explain says about the DNAT it applied, and about a destination DNAT'ed only on other ports. */
function dnatResolutionNotes(
  packet: Packet,
  dnat: DnatResolution | undefined,
  read: KubeProxyServices | undefined,
): string[] {
  if (dnat === undefined) {
    const address = canonicalIp(packet.to);
    const others = (read?.services ?? []).filter((s) => s.address === address);
    if (packet.dnatTo !== undefined || others.length === 0) return [];
    return [
      `kube-proxy DNATs ${packet.to} only for ${others.map((s) => formatServiceAddress(s)).join(", ")}: this packet (${packet.ipproto === undefined ? "any protocol" : protoName(packet.ipproto)}${packet.dport === undefined ? "" : ` port ${packet.dport}`}) is not DNAT'ed`,
    ];
  }
  const how = packet.iif === undefined ? "--to" : "--dnat-to";
  const others = dnat.backends.filter((b) => b !== dnat.traced);
  return [
    `kube-proxy DNATs ${dnat.services.join(", ")} (read from the node's rules): traced to ${dnat.traced}, as with ${how} ${dnat.traced}` +
      (others.length === 0
        ? ""
        : `; kube-proxy picks among ${dnat.backends.length} backends, ask about the others with ${how} (${others.join(", ")})`),
  ];
}

/**
 * Read the live node with every sysctl the simulator may need, and the guards symroute last
 * applied (its state file), kept only if the firewall holding them is on the node as applied.
 */
async function readLiveState(
  stateDir?: string,
  options: { everyFirewall?: boolean } = {},
): Promise<ExplainState> {
  const deps = createNodeDeps(stateDir === undefined ? {} : { stateDir });
  // Without --state-dir an unreadable default (explain run by a user who cannot read it) means no
  // guards known, not a failure: the routing explanation stands on its own.
  const savedRead = deps.store.read();
  const [confInterfaces, saved] = await Promise.all([
    listConfInterfaces(),
    stateDir === undefined ? savedRead.catch(() => undefined) : savedRead,
  ]);
  const spec = saved?.firewallSpec;
  const read = await deps.kernel.readNode({
    sysctls: simulatorSysctls(confInterfaces),
    firewalls: spec === undefined ? [] : [spec.backend],
    kubeProxyServices: true,
  });
  // A snapshot holds symroute's firewall as the kernel has it even without (readable) state: each
  // other front end is read on its own, one that cannot be read (tool missing) left out.
  let node = read;
  if (options.everyFirewall === true) {
    const others = await Promise.all(
      BACKENDS.filter((b) => !read.firewall.some((f) => f.backend === b)).map((b) =>
        deps.kernel.readFirewall([b]).catch(() => []),
      ),
    );
    const found = others.flat().filter((f) => f.ruleKeys.length > 0);
    node = { ...read, firewall: [...read.firewall, ...found] };
  }
  const known = spec === undefined ? {} : { firewallSpec: spec };
  const wanted = spec?.guards ?? [];
  if (saved === undefined) {
    // Without a state the guards are unknown: say so when symroute's firewall is there all the same.
    const present =
      options.everyFirewall === true
        ? node.firewall
        : (await Promise.all(BACKENDS.map((b) => deps.kernel.readFirewall([b]).catch(() => [])))).flat();
    const backends = present.filter((f) => f.ruleKeys.length > 0).map((f) => f.backend);
    if (backends.length > 0)
      return { node, guards: [], missingGuards: [], stateElsewhere: { file: deps.store.location, backends } };
  }
  if (spec === undefined || wanted.length === 0) return { node, guards: [], missingGuards: [], ...known };
  const owned = node.firewall.find((f) => f.backend === spec.backend)?.ruleKeys ?? [];
  const inPlace = firewallRuleKeys(spec).every((k) => owned.includes(k));
  return inPlace
    ? { node, guards: wanted, missingGuards: [], ...known }
    : { node, guards: [], missingGuards: wanted, ...known };
}

export async function readSnapshot(path: string): Promise<ExplainState> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new SymrouteError("invalid-argument", `cannot read the snapshot ${path}: ${fileErrorText(cause)}`, {
      cause,
      hint: "make one with `symroute snapshot > node.json`",
    });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw new SymrouteError("invalid-argument", `the snapshot ${path} is not JSON`, {
      cause,
      hint: "give --state the file `symroute snapshot > node.json` wrote (whole: a copy cut short is not JSON)",
    });
  }
  const snapshot = doc as Partial<Snapshot> | null;
  if (
    snapshot === null ||
    typeof snapshot !== "object" ||
    snapshot.version !== 1 ||
    typeof snapshot.node !== "object"
  ) {
    throw invalid(
      `the snapshot ${path} is not a symroute snapshot of version 1`,
      "make one with `symroute snapshot > node.json`",
    );
  }
  const node = snapshot.node as Partial<NodeState>;
  for (const key of ["links", "addresses", "routes", "rules"] as const) {
    if (!Array.isArray(node[key])) throw invalid(`the snapshot ${path} has no "${key}" list`);
  }
  if (snapshot.guards !== undefined && !Array.isArray(snapshot.guards))
    throw invalid(`the snapshot ${path} has a "guards" field that is not a list`);
  const spec = snapshot.firewallSpec;
  if (spec !== undefined && (typeof spec !== "object" || spec === null || !Array.isArray(spec.entries)))
    throw invalid(`the snapshot ${path} has a "firewallSpec" field without an "entries" list`);
  return {
    node: { ...(node as NodeState), sysctls: node.sysctls ?? {}, firewall: node.firewall ?? [] },
    guards: snapshot.guards ?? [],
    missingGuards: [],
    ...(spec === undefined ? {} : { firewallSpec: spec }),
  };
}

export function traceToJson(trace: Trace): Record<string, unknown> {
  return {
    result: trace.result,
    family: trace.family,
    table: trace.table ?? null,
    dev: trace.dev ?? null,
    gateway: trace.gateway ?? null,
    errno: trace.errno ?? null,
    reason: trace.reason ?? null,
    rule: trace.rule === undefined ? null : { ...trace.rule, text: formatRule(trace.rule) },
    route: trace.route === undefined ? null : { text: formatRoute(trace.route), ...trace.route },
    rpFilter: trace.rpFilter ?? null,
    guard: trace.guard ?? null,
    steps: trace.steps ?? [],
  };
}

export function registerExplain(program: Command): void {
  program
    .command("explain")
    .description(
      "Explain how the kernel routes one packet: every policy rule tried and why it matched or not, " +
        "the table, the route, the gateway and device, and the rp_filter verdict for arriving packets; " +
        "a destination kube-proxy DNATs (read from its rules) is traced to its backend. " +
        "Works on the live node or on a snapshot (--state).",
    )
    .addHelpText(
      "after",
      "\nExit codes: 0 explained, whatever the verdict (unicast, local, blackhole, unreachable, ...: " +
        "see the output); 3 the packet needs kernel behaviour the simulator does not model " +
        "(result unsupported); 1 error.",
    )
    .requiredOption("--to <address>", "destination address")
    .option("--from <address>", "source address (needed with --iif)")
    .option("--iif <dev>", "the packet arrives on this interface (input path, rp_filter)")
    .option("--oif <dev>", "a local socket bound to this interface sends it (IPv4)")
    .option(
      "--mark <mark>",
      "firewall mark of the packet (decimal or 0x hex), or a network's mark as plan prints it (0x1/0xff: its value)",
    )
    .option("--tos <tos>", "TOS byte (IPv4)")
    .option(
      "--proto <proto>",
      `${Object.keys(PROTOCOLS).join(", ")} or a protocol number from 0 to 255 (default: udp for IPv4, as ip route get; 0 for IPv6)`,
    )
    .option("--sport <port>", "source port (with --proto)")
    .option("--dport <port>", "destination port (with --proto)")
    .option("--uid <uid>", "socket owner of a locally generated packet (default 0)")
    .option(
      "--dnat-to <address>",
      "with --iif: kube-proxy's DNAT target (default: the first backend its rules name); the anti-spoofing guard sees --to, routing and rp_filter this",
    )
    .option("--state <file>", "explain on a snapshot written by `symroute snapshot` instead of the live node")
    .addOption(guardStateDirOption())
    .addOption(outputOption())
    .addHelpText(
      "after",
      [
        "",
        "Examples (addresses and interface names are placeholders: `ip -br link` and `symroute plan` give yours):",
        "  # the reply of a pod behind a load-balancer address, as a symroute node routes it; 0x1/0xff is",
        "  # the mark symroute gives its first network with the default marks.mask (`symroute plan` lists each):",
        "  symroute explain --from 10.112.0.5 --to 203.0.113.10 --iif vpod --mark 0x1/0xff",
        "  # the same packet without the connection mark: the path replies take without symroute",
        "  symroute explain --from 10.112.0.5 --to 203.0.113.10 --iif vpod",
        "  # a request arriving on the external interface, after kube-proxy's DNAT (rp_filter verdict included):",
        "  symroute explain --from 203.0.113.10 --to 10.112.0.5 --iif eth0.100 --proto tcp --dport 8080",
        "  # a spoofed source entering the external interface: symroute's anti-spoofing guard decides first:",
        "  symroute explain --from 10.112.0.5 --to 192.168.1.10 --iif eth0.100",
        "  # a request to an LB address, DNATed by kube-proxy to a pod (the guard exempts the pool):",
        "  symroute explain --from 203.0.113.10 --to 1.2.3.4 --dnat-to 10.112.0.5 --iif eth0.100 --proto tcp --dport 8080",
        "  # on a snapshot, as JSON:",
        "  symroute snapshot > node.json; symroute explain --state node.json --to 1.2.3.4 -o json",
        "",
        "On a symroute node the firewall restores the network's mark on every reply of a connection that",
        "arrived on an external interface: pass that mark (--mark, as `symroute plan` prints it) to see the reply path.",
        "kube-proxy DNATs service and load-balancer addresses before routing: explain reads its rules (iptables",
        "nat, nft tables ip/ip6 kube-proxy) and traces such a packet to the first backend they name, listing the",
        "others; --dnat-to chooses the backend yourself. IPVS's backends are not read (explain shows the LB address).",
      ].join("\n"),
    )
    .action(async (opts) => {
      await runAndExit(opts.output, async () => {
        const packet = packetFromOptions(opts);
        const state =
          opts.state === undefined ? await readLiveState(opts.stateDir) : await readSnapshot(opts.state);
        checkInterfaces(
          packet,
          state.node,
          opts.state === undefined ? "this node" : `the snapshot ${opts.state}`,
        );
        const read = state.node.kubeProxyServices;
        const dnat = resolveDnat(packet, read);
        const trace = tracePacket(compileRoutingState(state.node), dnatPacket(packet, dnat), {
          explain: true,
          guards: state.guards,
          ...(state.firewallSpec === undefined ? {} : { guardFrontEnd: state.firewallSpec.backend }),
        });
        const missing = state.missingGuards
          .filter((g) => g.iif === packet.iif)
          .map(
            (g) =>
              `symroute's IPv${g.family} guard on ${g.iif} is in its state but its firewall is not on the node as applied: not simulated (run \`symroute plan\`)`,
          )
          .concat(stateElsewhereNote(packet, state.stateElsewhere))
          .concat(dnatResolutionNotes(packet, dnat, read))
          .concat(
            dnat === undefined
              ? dnatNotes(
                  packet,
                  state.firewallSpec?.entries ?? [],
                  state.firewallSpec?.guards ?? state.guards,
                  read,
                )
              : [],
          );
        if (opts.output === "json")
          printJson({
            ...traceToJson(trace),
            dnat:
              dnat === undefined
                ? null
                : { services: dnat.services, backends: dnat.backends, tracedTo: dnat.traced },
            notes: missing,
          });
        else
          process.stdout.write(
            `${[...formatTrace(trace), ...missing.map((m) => `note: ${m}`)].join("\n")}\n`,
          );
        // A refusal (blackhole, unreachable, ...) is an answer too: only "not modelled" is not.
        return trace.result === "unsupported" ? EXIT.problemsFound : EXIT.ok;
      });
    });

  program
    .command("snapshot")
    .description(
      "Print this node's routing state (links, addresses, rules and routes of every table, the " +
        "sysctls explain reads, kube-proxy's DNAT targets, and symroute's firewall: its rules as the kernel lists them and, from its state, " +
        "the marks, pools and guards it applied) as JSON, for `symroute explain --state FILE` elsewhere or later.",
    )
    .addHelpText("after", "\nExit codes: 0 ok, 1 error.")
    .addOption(
      new Option("-o, --output <format>", "json (the only format)")
        .default("json" as OutputFormat)
        .argParser((value: string): OutputFormat => {
          // A snapshot is a file for explain --state: text would be printed as JSON all the same.
          if (value === "json") return value;
          throw new InvalidArgumentError(
            `snapshot prints JSON only: --output takes "json", not ${JSON.stringify(value)}`,
          );
        }),
    )
    .addOption(guardStateDirOption())
    .addHelpText(
      "after",
      "\nExample:\n  symroute snapshot > node.json\n  symroute explain --state node.json --from 10.112.0.5 --to 203.0.113.10 --iif vpod --mark 0x1/0xff\n",
    )
    .action(async (opts) => {
      await runAndExit(opts.output, async () => {
        const { node, guards, firewallSpec, stateElsewhere } = await readLiveState(opts.stateDir, {
          everyFirewall: true,
        });
        const snapshot: Snapshot = {
          version: 1,
          node,
          ...(guards.length === 0 ? {} : { guards }),
          ...(firewallSpec === undefined ? {} : { firewallSpec }),
        };
        printJson(snapshot);
        // A snapshot is often taken by one person and read by another: say on stderr (stdout is
        // the file) what it could not hold.
        const unreadable = node.kubeProxyServices?.sources.filter((s) => s.includes("not readable")) ?? [];
        if (stateElsewhere !== undefined)
          process.stderr.write(
            `warning: symroute's firewall (${stateElsewhere.backends.join(", ")}) is on this node, but there is no state file at ${stateElsewhere.file}: the snapshot holds its rules but not the anti-spoofing guards it applied, which explain --state on it cannot simulate then; give --state-dir the directory apply used\n`,
          );
        if (unreadable.length > 0)
          process.stderr.write(
            `warning: this snapshot could not read ${unreadable.join("; ")}: it holds no kube-proxy DNAT targets and no firewall rules from there; take it as root (or with CAP_NET_ADMIN) for a complete one\n`,
          );
        return EXIT.ok;
      });
    });
}
