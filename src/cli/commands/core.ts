// plan, apply, delete: the one-shot commands.

import { readFile } from "node:fs/promises";
import { Command, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import pc from "picocolors";
import { loadConfigOrThrow } from "../../config/index.ts";
import type { Config } from "../../config/schema.ts";
import { isSymrouteError, SymrouteError } from "../../model/errors.ts";
import { formatHex } from "../../model/marks.ts";
import { createEngine, describeChanges, type ApplyReport, type PlanReport } from "../../engine/engine.ts";
import { classifyForm, ipsetsOf } from "../../model/firewall.ts";
import type { ClusterView } from "../cluster-config.ts";
import { configFileReadError } from "../config-file.ts";
import { createNodeDeps } from "../deps.ts";
import {
  kubeconfigOption,
  kubernetesOption,
  metallbNamespaceOption,
  nodeNameOption,
  refuseKubernetesFlagsWithout,
  requireNodeName,
} from "../kubernetes-options.ts";
import {
  EXIT,
  parseOutputFormat,
  printJson,
  runAndExit,
  stateDirOption,
  type OutputFormat,
} from "../output.ts";
import { counted } from "../../model/plural.ts";

export async function readConfigFile(path: string): Promise<Config> {
  const { text, name } = await readConfigText(path);
  return loadConfigOrThrow(text, name);
}

/** The file's text (`-`: stdin) and the name its problems are reported under. */
async function readConfigText(path: string): Promise<{ readonly text: string; readonly name: string }> {
  try {
    const text = path === "-" ? await readStdin() : await readFile(path, "utf8");
    return { text, name: path === "-" ? "<stdin>" : path };
  } catch (cause) {
    throw configFileReadError(path, cause);
  }
}

/** The options of a command that takes its networks from a file or, like the agent, from the cluster. */
export interface NetworksOptions {
  readonly config?: string;
  readonly kubernetes?: true;
  readonly nodeName?: string;
  readonly kubeconfig?: string;
  readonly metallbNamespace: string;
}

/**
 * plan's and doctor's configuration: the file (-c), or with --kubernetes the one the agent with
 * the same flags converges this node to (the file, when given, for the global settings and local
 * networks, as the agent's -c). `missing`: neither was given. The Kubernetes client is loaded only
 * with --kubernetes.
 */
export async function readNetworksConfig(
  opts: NetworksOptions,
  missing: () => never,
): Promise<{ readonly config: Config; readonly cluster?: ClusterView }> {
  if (opts.kubernetes !== true) {
    if (opts.config === undefined) return missing();
    return { config: await readConfigFile(opts.config) };
  }
  const nodeName = requireNodeName(opts.nodeName);
  const file = opts.config === undefined ? undefined : await readConfigText(opts.config);
  const { readClusterConfig } = await import("../cluster-config.ts");
  return readClusterConfig({
    ...(file === undefined ? {} : { file }),
    nodeName,
    kubeconfig: opts.kubeconfig,
    metallbNamespace: opts.metallbNamespace,
  });
}

/** The cluster's networks for this node, as plan's text shows them under its title. */
function clusterLines(cluster: ClusterView): string[] {
  const out = [
    pc.dim(
      `  cluster: node ${cluster.node}, ${cluster.server}: ${counted(cluster.networks.length, "SymrouteNetwork")}`,
    ),
  ];
  for (const n of cluster.networks) {
    const state = n.state === "selected" ? "selected" : `${n.state} (${n.reason ?? n.state})`;
    out.push(pc.dim(`    ${n.name}: ${state}${n.message === undefined ? "" : `: ${n.message}`}`));
  }
  return out;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const outputOption = () =>
  new Option("-o, --output <format>", "text or json")
    .default("text" as OutputFormat)
    .argParser(parseOutputFormat);

const lockWaitOption = () =>
  new Option("--lock-wait <seconds>", "how long to wait for another symroute run in this namespace")
    .default(30)
    .argParser((value: string): number => {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0)
        throw new InvalidArgumentError(`--lock-wait takes a number of seconds, not ${JSON.stringify(value)}`);
      return n;
    });
const dryRunOption = () => new Option("--dry-run", "print the exact payloads instead of running them");

/** Each change with `text`, the line describeChange gives. */
function changesToJson(report: PlanReport): Record<string, unknown>[] {
  const texts = describeChanges(report.changes, report.payloads);
  return report.changes.map((change, i) => ({ ...change, text: texts[i] }));
}

/** kube-proxy's mode as plan's title line shows it: said when `auto` found no kube-proxy. */
function kubeProxyText(report: PlanReport): string {
  if (report.kubeProxyMode === undefined) return "-";
  return report.kubeProxyModeSource === "assumed"
    ? `${report.kubeProxyMode}, assumed: no kube-proxy found on the node`
    : report.kubeProxyMode;
}

export function planToJson(
  report: PlanReport | ApplyReport,
  options: { payloads: boolean },
): Record<string, unknown> {
  const p = report.payloads;
  return {
    inSync: report.inSync,
    ...("applied" in report ? { applied: report.applied } : {}),
    firewall: report.firewall ?? null,
    kubeProxyMode: report.kubeProxyMode ?? null,
    kubeProxyModeSource: report.kubeProxyModeSource ?? null,
    networks: report.networks,
    changes: changesToJson(report),
    conflicts: report.conflicts,
    warnings: report.warnings,
    warningDetails: report.warningDetails,
    ...(report.markMoves === undefined ? {} : { markMoves: report.markMoves }),
    ownedObjects: report.ownedObjects,
    // The state file this run used (absent from reports made without an engine).
    ...(report.state === undefined ? {} : { state: report.state }),
    guards: report.firewallSpec?.guards ?? [],
    arpProbes: report.firewallSpec?.arpProbes ?? [],
    classify: classifyForm(report.firewallSpec) ?? null,
    ruleSkips: report.ruleSkips ?? [],
    // The iptables front end's ipsets: one lookup per packet whatever the number of pools.
    ipsets: ipsetsOf(report.firewallSpec).map((s) => ({
      name: s.name,
      purpose: s.purpose,
      family: s.family,
      type: "hash:net,iface",
      elements: s.elements.length,
    })),
    ...(options.payloads
      ? {
          payloads: {
            links: p.linkAdds.lines,
            sysctls: p.sysctls.map((s) => ({ name: s.name, value: s.value })),
            ip: Object.fromEntries(p.ip.map((b) => [`ipv${b.family}`, b.lines])),
            firewall: p.firewall,
            linkDeletes: p.linkDeletes.lines,
          },
        }
      : {}),
  };
}

export function formatPlanText(
  report: PlanReport,
  title: string,
  options: {
    readonly removing?: boolean;
    /** The caller ends the report with its own line when nothing changes (apply's verdict). */
    readonly ownVerdict?: boolean;
    /** plan --kubernetes: what each SymrouteNetwork means for this node, under the title. */
    readonly cluster?: ClusterView;
  } = {},
): string {
  const out: string[] = [];
  out.push(
    pc.bold(title) + pc.dim(`  (firewall: ${report.firewall ?? "-"}, kube-proxy: ${kubeProxyText(report)})`),
  );
  if (report.state !== undefined)
    out.push(
      pc.dim(
        `  state: ${report.state.file} (${report.state.found ? "found" : "none: no earlier apply recorded"}${
          report.state.baselineUnknown === undefined
            ? ""
            : `; not known from before symroute: ${report.state.baselineUnknown.join(", ")}`
        })`,
      ),
    );
  if (options.cluster !== undefined) out.push(...clusterLines(options.cluster));
  const why = `    ${pc.dim("why:")} `;
  for (const n of report.networks) {
    let extra = n.table === undefined ? "" : `, table ${n.table}`;
    if (n.mark !== undefined) extra += `, mark ${formatHex(n.mark)}`;
    out.push(
      `  ${pc.cyan(n.name)} IPv${n.family} ${n.pools.join(", ")} on ${n.interface}: ${pc.bold(n.case)} (method ${n.method}${extra})`,
      why + n.reason,
    );
  }
  for (const g of report.firewallSpec?.guards ?? []) {
    const except = g.exempt.length === 0 ? "" : `, except to ${g.exempt.join(", ")}`;
    out.push(
      `  ${pc.cyan("anti-spoofing")} IPv${g.family} on ${g.iif}: ${pc.bold(g.mode)} source check${except}`,
      why + g.reason,
    );
  }
  for (const p of report.firewallSpec?.arpProbes ?? []) {
    out.push(`  ${pc.cyan("arp probes")} on ${p.oif} for ${p.targets.join(", ")}`, why + p.reason);
  }
  const classify = classifyForm(report.firewallSpec);
  if (classify !== undefined)
    out.push(
      `  ${pc.cyan("classify")} new connections (${classify.backend}): ${pc.bold(classify.form)}, ${classify.text}`,
    );
  for (const s of report.ruleSkips ?? []) {
    const what =
      s.skip === undefined
        ? `none before the ${counted(s.fwmarkRules, "fwmark rule")}`
        : s.groups === undefined
          ? `priority ${s.skip.priority} goto ${s.skip.goto} over the ${s.fwmarkRules} fwmark rules`
          : `priority ${s.skip.priority} goto ${s.skip.goto} over the ${s.fwmarkRules} fwmark rules, in ${counted(s.groups.groups, "group")} at ${s.groups.from}-${s.groups.to} behind gotos at ${s.groups.dispatch}`;
    out.push(`  ${pc.cyan("rule skip")} IPv${s.family}: ${pc.bold(what)}`, why + s.reason);
  }
  for (const s of ipsetsOf(report.firewallSpec)) {
    const what = s.purpose === "classify" ? "classify by pool and interface" : "pools the guards exempt";
    out.push(
      `  ${pc.cyan("ipset")} ${s.name} (hash:net,iface, IPv${s.family}, ${counted(s.elements.length, "element")}): ${what}`,
      `${why}one set lookup per packet whatever the number of pools (sets, not rule lists)`,
    );
  }
  const changes = report.changes;
  if (changes.length === 0) {
    if (options.ownVerdict !== true)
      out.push(
        pc.green(
          options.removing === true
            ? "Nothing to delete: symroute owns nothing on this node."
            : "In sync: nothing to change.",
        ),
      );
  } else {
    out.push(`${counted(changes.length, "change")}:`);
    const texts = describeChanges(changes, report.payloads);
    // The coloured sign of each action, made once rather than once per change.
    const added = `  ${pc.green("+")} `;
    const deleted = `  ${pc.red("-")} `;
    const changed = `  ${pc.yellow("~")} `;
    for (let i = 0; i < changes.length; i++) {
      const action = (changes[i] as PlanReport["changes"][number]).action;
      out.push((action === "add" ? added : action === "delete" ? deleted : changed) + (texts[i] as string));
    }
  }
  for (const c of report.conflicts) out.push(`${pc.red("conflict:")} ${c.object}: ${c.reason}`);
  for (const w of report.warnings) out.push(`${pc.yellow("warning:")} ${w}`);
  return `${out.join("\n")}\n`;
}

/** apply's text report: the plan it ran, then one verdict line (converged, applied, or blocked). */
export function formatApplyText(report: ApplyReport): string {
  const verdict =
    report.conflicts.length > 0
      ? `${pc.red("Not converged")}: ${counted(report.conflicts.length, "conflict")} with foreign objects (above); ${report.applied ? `${counted(report.changes.length, "change")} applied, ` : ""}symroute owns ${counted(report.ownedObjects, "object")}.`
      : report.applied
        ? `${pc.green("Applied and verified")}: ${counted(report.changes.length, "change")}; symroute owns ${counted(report.ownedObjects, "object")}.`
        : `${pc.green("Nothing to do")}: the node was already converged.`;
  return `${formatPlanText(report, "symroute apply", { ownVerdict: true })}${verdict}\n`;
}

export function formatPayloadsText(report: PlanReport): string {
  const p = report.payloads;
  const out: string[] = [];
  if (p.linkAdds.lines.length > 0) out.push("# ip -batch - (links)", ...p.linkAdds.lines);
  for (const s of p.sysctls) out.push(`# sysctl -w ${s.name.replaceAll("/", ".")}=${s.value}`);
  for (const b of p.ip) out.push(`# ip${b.family === 6 ? " -6" : ""} -batch -`, ...b.lines);
  for (const f of p.firewall) {
    out.push(
      f.tool === "nft"
        ? "# nft -f -"
        : f.tool === "ipset"
          ? "# ipset restore -exist"
          : `# ${f.family === 6 ? "ip6tables" : "iptables"}-restore --noflush`,
    );
    out.push(f.script.trimEnd());
  }
  if (p.linkDeletes.lines.length > 0) out.push("# ip -batch - (link deletions)", ...p.linkDeletes.lines);
  return out.length === 0 ? "# nothing to run\n" : `${out.join("\n")}\n`;
}

function engineFor(stateDir: string | undefined, config: Config | undefined) {
  return createEngine(createNodeDeps({ stateDir: stateDir ?? config?.stateDir }));
}

export function registerPlanApplyDelete(program: Command): void {
  program
    .command("plan")
    .description("Show what symroute would change on this node, and why.")
    .addHelpText(
      "after",
      "\nExit codes: 0 in sync, 2 changes pending (whether or not there are conflicts too), 4 conflicts with foreign objects and no change pending, 1 error.",
    )
    .option(
      "-c, --config <file>",
      "configuration file (YAML; - for stdin); required without --kubernetes, with it the agent's (global settings and local networks)",
    )
    .addOption(outputOption())
    .addOption(stateDirOption())
    .option("--payloads", "also print the exact tool inputs an apply would run")
    .addOption(
      kubernetesOption(
        "the networks the cluster gives this node (SymrouteNetworks, MetalLB pools), as `symroute agent --kubernetes` with the same flags converges it; changes nothing",
      ),
    )
    .addOption(nodeNameOption())
    .addOption(kubeconfigOption())
    .addOption(metallbNamespaceOption())
    .action(async (opts, command) => {
      refuseKubernetesFlagsWithout(command);
      await runAndExit(opts.output, async () => {
        const { config, cluster } = await readNetworksConfig(opts, () =>
          command.error("error: required option '-c, --config <file>' not specified (or --kubernetes)"),
        );
        const report = await engineFor(opts.stateDir, config).plan(config);
        if (opts.output === "json")
          printJson({
            ...planToJson(report, { payloads: opts.payloads === true }),
            ...(cluster === undefined ? {} : { cluster }),
          });
        else {
          process.stdout.write(
            formatPlanText(report, "symroute plan", cluster === undefined ? {} : { cluster }),
          );
          if (opts.payloads === true) process.stdout.write(formatPayloadsText(report));
        }
        if (report.changes.length > 0) return EXIT.changesPending;
        return report.conflicts.length > 0 ? EXIT.conflicts : EXIT.ok;
      });
    });

  program
    .command("apply")
    .description(
      "Converge this node to the configuration: one ip batch per family, one firewall transaction, then verify; any failure rolls back to the state before.",
    )
    .addHelpText(
      "after",
      "\nExit codes: 0 converged, 4 converged except objects blocked by foreign ones (conflicts), 1 error (nothing changed), also when a network's mark would move (without --force).",
    )
    .requiredOption("-c, --config <file>", "configuration file (YAML; - for stdin)")
    .addOption(dryRunOption())
    .addOption(outputOption())
    .addOption(stateDirOption())
    .addOption(lockWaitOption())
    .option(
      "--force",
      "move a network's mark value (a changed marks.mask) although connections open now keep the old one: their replies leave by main until they close",
    )
    .action(async (opts) => {
      await runAndExit(opts.output, async () => {
        const config = await readConfigFile(opts.config);
        const report = await engineFor(opts.stateDir, config).apply(config, {
          moveMarks: opts.force === true,
          dryRun: opts.dryRun === true,
          lockWaitMs: opts.lockWait * 1000,
        });
        if (opts.output === "json") printJson(planToJson(report, { payloads: opts.dryRun === true }));
        else if (opts.dryRun === true) {
          process.stdout.write(formatPlanText(report, "symroute apply --dry-run"));
          process.stdout.write(formatPayloadsText(report));
        } else process.stdout.write(formatApplyText(report));
        return report.conflicts.length > 0 ? EXIT.conflicts : EXIT.ok;
      });
    });

  program
    .command("delete")
    .description(
      "Remove everything symroute owns on this node and restore the sysctls it changed. Without -c, uses the settings recorded at the last apply.",
    )
    .addHelpText(
      "after",
      "\nExit codes: 0 removed (or nothing to remove), 1 error, also when symroute's objects are on the node but its state file is not, or does not know the node from before symroute (without --force), and when its state file is there but not valid (edited by hand, cut short), --force or not: nothing is changed; correct the field named or restore the file from a backup.",
    )
    .option("-c, --config <file>", "configuration file, for its routeProtocol, rulePriorities and stateDir")
    .addOption(dryRunOption())
    .addOption(outputOption())
    .addOption(stateDirOption())
    .addOption(lockWaitOption())
    .option(
      "--force",
      "remove symroute's objects even when its state file is missing or does not know the node from before symroute; the sysctls it changed then stay as they are. A state file that is there but not valid is refused all the same",
    )
    .action(async (opts) => {
      await runAndExit(opts.output, async () => {
        const config =
          opts.config === undefined
            ? undefined
            : await readConfigFile(opts.config).catch((error: unknown) => {
                // A broken file must not stand between the node and its clean-up.
                if (!isSymrouteError(error) || error.kind !== "invalid-argument") throw error;
                throw new SymrouteError(error.kind, error.message, {
                  cause: error,
                  details: error.details,
                  hint: `${error.hint === undefined ? "" : `${error.hint}; `}delete needs no -c: without it, it uses the settings the last apply recorded`,
                });
              });
        const report = await engineFor(opts.stateDir, config).remove(config, {
          force: opts.force === true,
          dryRun: opts.dryRun === true,
          lockWaitMs: opts.lockWait * 1000,
        });
        if (opts.output === "json") printJson(planToJson(report, { payloads: opts.dryRun === true }));
        else {
          process.stdout.write(
            formatPlanText(report, opts.dryRun === true ? "symroute delete --dry-run" : "symroute delete", {
              removing: true,
            }),
          );
          if (opts.dryRun === true) process.stdout.write(formatPayloadsText(report));
          else if (report.applied)
            process.stdout.write(`${pc.green("Removed")}: ${counted(report.changes.length, "change")}.\n`);
        }
        return EXIT.ok;
      });
    });
}
