// symroute doctor: simulate each network's request and reply paths on the live node.

import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { Command, Option } from "@commander-js/extra-typings";
import pc from "picocolors";
import { createEngine } from "../../engine/engine.ts";
import { formerProtocols } from "../../plan/diff.ts";
import { SymrouteError } from "../../model/errors.ts";
import { SYSCTLS_TO_READ } from "../../plan/sysctls.ts";
import { simulatorSysctls } from "../../simulate/index.ts";
import { parseAddressWords } from "../../simulate/words.ts";
import { diagnose, type DoctorReport, type HostFacts, type MissingInterface } from "../../verify/doctor.ts";
import { createNodeDeps } from "../deps.ts";
import {
  kubeconfigOption,
  kubernetesOption,
  metallbNamespaceOption,
  nodeNameOption,
  refuseKubernetesFlagsWithout,
} from "../kubernetes-options.ts";
import {
  EXIT,
  parseOutputFormat,
  printJson,
  runAndExit,
  stateDirOption,
  type OutputFormat,
} from "../output.ts";
import { readNetworksConfig } from "./core.ts";
import { counted } from "../../model/plural.ts";

/** systemd-networkd, when it runs, deletes foreign rules unless told not to. */
function networkdFacts(): HostFacts {
  // networkd manages the host's own network namespace only.
  if (!existsSync("/run/systemd/netif/links") || !inInitialNetworkNamespace()) return {};
  const files = ["/etc/systemd/networkd.conf"];
  const dir = "/etc/systemd/networkd.conf.d";
  if (existsSync(dir))
    for (const f of readdirSync(dir).sort()) if (f.endsWith(".conf")) files.push(`${dir}/${f}`);
  let manages = true;
  for (const f of files) {
    const text = existsSync(f) ? readFileSync(f, "utf8") : "";
    const m = /^\s*ManageForeignRoutingPolicyRules\s*=\s*(\S+)/im.exec(text);
    if (m !== null) manages = !/^(no|false|0|off)$/i.test(m[1] ?? "");
  }
  return { networkdDeletesForeignRules: manages };
}

function inInitialNetworkNamespace(): boolean {
  try {
    const self = statSync("/proc/self/ns/net");
    const init = statSync("/proc/1/ns/net");
    return self.ino === init.ino && self.dev === init.dev;
  } catch {
    return false;
  }
}

export function formatDoctorText(report: DoctorReport): string {
  const lines: string[] = [];
  for (const f of report.findings) {
    const where = `${f.network}${f.family === undefined ? "" : ` IPv${f.family}`}`;
    const label = !f.ok ? pc.red("FAIL") : f.warning !== undefined ? pc.yellow("warn") : pc.green("ok  ");
    lines.push(`${label} ${where}: ${f.path}: ${f.summary}`);
    if (f.services !== undefined && f.services.length > 0)
      lines.push(`       kube-proxy: ${f.services.join(", ")}`);
    if (f.assumed !== undefined) lines.push(`       assumed: ${f.assumed}`);
    if (f.cause !== undefined) lines.push(`       cause: ${f.cause}`);
    if (f.fix !== undefined) lines.push(`       fix:   ${f.fix}`);
    if (f.warning !== undefined) lines.push(`       warning: ${f.warning}`);
  }
  const problems = report.findings.filter((f) => !f.ok).length;
  const warnings = report.findings.filter((f) => f.ok && f.warning !== undefined).length;
  lines.push(
    report.findings.length === 0
      ? "Nothing to check: no networks for this node in the configuration."
      : problems === 0
        ? warnings === 0
          ? pc.green("Healthy: every path checked works.")
          : pc.green(`Healthy: every path checked works (${counted(warnings, "warning")} above).`)
        : pc.red(`${counted(problems, "problem")} found.`),
  );
  return `${lines.join("\n")}\n`;
}

/**
 * `symroute explain`, with the state directory doctor read when it is not the default (absolute:
 * --state-dir is made so as it is parsed, the configuration's stateDir must be).
 */
function explainCommand(stateDir: string | undefined): string {
  return stateDir === undefined ? "symroute explain" : `symroute explain --state-dir ${stateDir}`;
}

export function registerDoctor(program: Command): void {
  program
    .command("doctor")
    .description(
      "Simulate, for each network, a request from an outside client to an LB address and its reply (pod and host-network backends), and pods reaching the LB address; check that the node can resolve the network's gateway on the pool's interface (neighbour table, strict ARP) and that the interface still checks sources (rp_filter, symroute's guard); report what is broken with its cause and the command that fixes it.",
    )
    .addHelpText("after", "\nExit codes: 0 healthy, 3 problems found, 1 error.")
    .option(
      "-c, --config <file>",
      "configuration file (required without --kubernetes: the file you apply; with it, the agent's)",
    )
    .addOption(
      new Option("-o, --output <format>", "text or json")
        .default("text" as OutputFormat)
        .argParser(parseOutputFormat),
    )
    .addOption(stateDirOption())
    .option(
      "--client <address>",
      "an outside client to simulate; repeat for more (default 203.0.113.10 / 2001:db8:ffff::10)",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .addOption(
      kubernetesOption(
        "diagnose the networks the cluster gives this node (SymrouteNetworks, MetalLB pools), as `symroute agent --kubernetes` with the same flags converges it",
      ),
    )
    .addOption(nodeNameOption())
    .addOption(kubeconfigOption())
    .addOption(metallbNamespaceOption())
    .action(async (opts, command) => {
      refuseKubernetesFlagsWithout(command);
      await runAndExit(opts.output, async () => {
        const { config } = await readNetworksConfig(opts, () => {
          throw new SymrouteError("invalid-argument", "doctor needs the configuration to know the networks", {
            hint: "run `symroute doctor -c FILE` with the file you apply, or `symroute doctor --kubernetes` on a node of a cluster (docs/kubernetes.md)",
          });
        });
        const deps = createNodeDeps({ stateDir: opts.stateDir ?? config.stateDir });
        const node = await deps.kernel.readNode({
          sysctls: [...SYSCTLS_TO_READ.sysctls, ...simulatorSysctls([])],
          linkSysctls: [
            ...SYSCTLS_TO_READ.linkSysctls,
            ...simulatorSysctls(["{}"]).filter((n) => n.includes("{}")),
            "net/ipv4/conf/{}/arp_announce",
          ],
          firewalls: await deps.kernel.availableFirewalls(),
          neighbours: true,
          kubeProxyServices: true,
        });
        // A network whose interface is not on the node is a finding, not the end of the diagnosis:
        // the others are planned and simulated without it.
        const links = new Set(node.links.map((l) => l.ifname));
        const missingInterfaces = config.networks.flatMap((n): MissingInterface[] => {
          if (links.has(n.interface)) return [];
          if (n.vlan !== undefined && links.has(n.vlan.parent)) return [];
          const families = [...new Set(n.addresses.map((a) => (a.includes(":") ? 6 : 4) as 4 | 6))];
          return [
            {
              network: n.name,
              interface: n.interface,
              families,
              ...(n.vlan === undefined ? {} : { vlanParent: n.vlan.parent }),
            },
          ];
        });
        const missingNames = new Set(missingInterfaces.map((m) => m.network));
        // A move of routeProtocol not applied yet: the rules under the state's number are symroute's.
        const formerRouteProtocols = formerProtocols(config.routeProtocol, await deps.store.read());
        const plan = await createEngine(deps).plan({
          ...config,
          networks: config.networks.filter((n) => !missingNames.has(n.name)),
        });
        // Fixes name the command exactly as this node needs it: with --kubernetes, the agent converges it.
        const stateDirArgs = opts.stateDir === undefined ? [] : ["--state-dir", opts.stateDir];
        const applyCommand = (
          opts.kubernetes === true
            ? [
                "symroute agent --kubernetes",
                ...(opts.config === undefined ? [] : ["-c", resolve(opts.config)]),
                ...stateDirArgs,
              ]
            : ["symroute apply -c", resolve(opts.config as string), ...stateDirArgs]
        ).join(" ");
        const clients: Partial<Record<4 | 6, string[]>> = {};
        for (const c of opts.client ?? []) {
          const family = parseAddressWords(c)?.family;
          if (family === undefined)
            throw new SymrouteError(
              "invalid-argument",
              `--client must be an IPv4 or IPv6 address, not ${JSON.stringify(c)}`,
            );
          (clients[family] ??= []).push(c);
        }
        const report = diagnose({
          node,
          decisions: plan.networks,
          firewall: plan.firewallSpec,
          podCIDRs: config.podCIDRs,
          routeProtocol: config.routeProtocol,
          formerRouteProtocols,
          kubeProxyMode: plan.kubeProxyMode,
          pendingChanges: plan.changes.length,
          conflicts: plan.conflicts,
          host: networkdFacts(),
          applyCommand,
          ...(opts.kubernetes === true ? { agentConverges: true } : {}),
          // explain reads symroute's guards from the state directory this doctor run used.
          explainCommand: explainCommand(opts.stateDir ?? config.stateDir),
          clients,
          missingInterfaces,
        });
        if (opts.output === "json") printJson(report);
        else process.stdout.write(formatDoctorText(report));
        return report.healthy ? EXIT.ok : EXIT.problemsFound;
      });
    });
}
