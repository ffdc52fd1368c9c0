// symroute lab: build the article's topologies in network namespaces, and show what symroute does
// to them (`lab demo`, the first command of the README).

import { Command, Option } from "@commander-js/extra-typings";
import pc from "picocolors";
import { formatMatrix, unexpectedCells } from "../../lab/matrix.ts";
import type { Cell } from "../../lab/matrix.ts";
import { CASE_TITLES, topologyPicture } from "../../lab/picture.ts";
import { formatNeighbour, resolved } from "../../lab/neighbours.ts";
import type { NeighbourState } from "../../lab/neighbours.ts";
import { checkLabPrerequisites } from "../../lab/preflight.ts";
import { runScenario } from "../../lab/scenario.ts";
import type { ScenarioReport } from "../../lab/scenario.ts";
import { describeDifference } from "../../lab/snapshot.ts";
import {
  DEFAULT_SPEC,
  describeSpec,
  KUBE_PROXY_VARIANTS,
  LAB_CASES,
  nodesOf,
  parseLabCase,
} from "../../lab/spec.ts";
import type { FirewallFrontEnd, KubeProxyVariant, LabCase, LabSpec } from "../../lab/spec.ts";
import { labConfigText, stateDirOf, symrouteArgv, writeLabConfig } from "../../lab/symroute.ts";
import type { SymrouteRun } from "../../lab/symroute.ts";
import { defaultDown, labRunsOf, type LabRun } from "../../lab/runs.ts";
import {
  buildTopology,
  LAB_PREFIX,
  listLabNamespaces,
  removeLabNamespaces,
  teardownAll,
} from "../../lab/topology.ts";
import { SymrouteError } from "../../model/errors.ts";
import { commanderParser, EXIT, runAndExit } from "../output.ts";
import { agreeing, counted } from "../../model/plural.ts";

/** Ctrl-C or a TERM while a topology exists: tear it down, then exit as the signal would. */
function tearDownOnSignals(): void {
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: removing the lab namespaces...\n`);
      void teardownAll().finally(() => process.exit(code));
    });
  }
}

/** `--case`; `unset` says what the command does without it (demo: every case; up: one default). */
const caseOption = (unset: string) =>
  new Option("--case <n>", `the article's case: 1, 2, 3 or 4 (${unset})`).argParser(
    commanderParser(parseLabCase),
  );
const kubeProxyOption = () =>
  new Option("--kube-proxy <mode>", "kube-proxy stand-in")
    .choices(KUBE_PROXY_VARIANTS)
    .default(DEFAULT_SPEC.kubeProxy);
const firewallOption = () =>
  new Option("--firewall <front-end>", "the firewall symroute is told to use")
    .choices(["nftables", "iptables"] as const)
    .default(DEFAULT_SPEC.firewall);
const ipv4Option = () => new Option("--ipv4-only", "IPv4 only (the default is dual-stack)");
const nodesOption = () =>
  new Option("--nodes <n>", "1, or 2 nodes on shared links (a backend on the other node)")
    .choices(["1", "2"] as const)
    .default("1" as const);

function specFrom(opts: {
  case?: LabCase;
  kubeProxy: KubeProxyVariant;
  firewall: FirewallFrontEnd;
  ipv4Only?: true;
  nodes: "1" | "2";
}): LabSpec {
  return {
    case: opts.case ?? DEFAULT_SPEC.case,
    kubeProxy: opts.kubeProxy,
    firewall: opts.firewall,
    dualStack: opts.ipv4Only !== true,
    nodes: opts.nodes === "2" ? 2 : 1,
  };
}

const heading = (text: string) => `\n${pc.bold(pc.cyan(text))}\n`;
const indent = (text: string) =>
  text
    .trimEnd()
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");

/** The plan in full; of apply, delete and the second plan only their closing line (the plan said it all). */
function printRun(title: string, run: SymrouteRun): void {
  process.stdout.write(heading(`${title}: ${run.argv.join(" ")}  (exit ${run.code})`));
  const lines = run.stdout.trimEnd().split("\n");
  const shown = title === "plan" || run.code !== 0 ? lines : lines.slice(-1);
  if (run.stdout.trim() !== "") process.stdout.write(`${indent(shown.join("\n"))}\n`);
  if (run.stderr.trim() !== "") process.stdout.write(`${indent(pc.yellow(run.stderr))}\n`);
}

function printMatrix(title: string, cells: readonly Cell[]): void {
  process.stdout.write(heading(title));
  process.stdout.write(`${formatMatrix(cells, { ok: pc.green("✓"), fail: pc.red("✗") })}\n`);
}

function colourNeighbour(n: NeighbourState): string {
  const text = formatNeighbour(n);
  return resolved(n) ? pc.green(text) : n.states.includes("PERMANENT") ? pc.yellow(text) : pc.red(text);
}

/** Whether a finished scenario did what it should: the verdict `lab demo` exits with. */
function scenarioProblems(report: ScenarioReport): string[] {
  const problems: string[] = [];
  const wrongBefore = unexpectedCells(report.before);
  if (wrongBefore.length > 0)
    problems.push(
      `${counted(wrongBefore.length, "cell")} before symroute ${agreeing(wrongBefore.length, "was", "were")} not as expected`,
    );
  if (report.stoppedAt !== undefined) problems.push(`symroute ${report.stoppedAt} failed`);
  if (report.planAfterApply !== undefined && report.planAfterApply.code !== 0) {
    problems.push(`plan after apply exited ${report.planAfterApply.code} (expected 0: in sync)`);
  }
  if (report.after !== undefined) {
    const wrong = unexpectedCells(report.after);
    if (wrong.length > 0) problems.push(`${counted(wrong.length, "cell")} after apply failed`);
  }
  const unresolved = (report.neighbours?.after ?? []).filter((n) => !resolved(n));
  if (unresolved.length > 0) {
    problems.push(`after apply the node did not resolve ${unresolved.map(formatNeighbour).join("; ")}`);
  }
  if (report.arpControl !== undefined && unexpectedCells(report.arpControl.cells).length > 0) {
    problems.push(
      "with symroute's ARP probes removed, some external cells still held: the lab is not strict",
    );
  }
  if (report.residue !== undefined && report.residue.length > 0) {
    problems.push(
      `after delete the node differs from its start in ${report.residue.map((d) => d.section).join(", ")}`,
    );
  }
  return problems;
}

async function demo(specs: readonly LabSpec[]): Promise<number> {
  let failures = 0;
  for (const spec of specs) {
    process.stdout.write(
      `\n${pc.bold(CASE_TITLES[spec.case] ?? `Case ${spec.case}`)}  ${pc.dim(`(${describeSpec(spec)})`)}\n`,
    );
    process.stdout.write(`${topologyPicture(spec)}\n`);
    const report = await runScenario(
      spec,
      {
        built: (t) => {
          process.stdout.write(pc.dim(`  namespaces: ${Object.values(t.namespaces).join(" ")}\n`));
          process.stdout.write(heading("symroute's configuration"));
          process.stdout.write(`${indent(labConfigText(spec))}\n`);
        },
        step: (name, value) => {
          if (Array.isArray(value)) {
            printMatrix(
              name === "before" ? "Connectivity before symroute" : "Connectivity after symroute apply",
              value,
            );
          } else {
            printRun(name, value);
          }
        },
        neighbours: (phase, states) => {
          if (states.length === 0) return;
          process.stdout.write(
            heading(
              `The node's neighbour entries for its next hops on ${states[0]?.device ?? "the pool's link"} (${phase} apply)`,
            ),
          );
          process.stdout.write(`${states.map((n) => `    ${colourNeighbour(n)}`).join("\n")}\n`);
          if (phase === "before" && states.some((n) => n.states.length === 0)) {
            // Without symroute the requests die on the node (rp_filter, replies by eth0): nothing asks
            // for the next hop yet. The control after apply shows what a strict peer does to the ask.
            process.stdout.write(
              pc.dim("    (no entry: before apply nothing on the node sends to its next hop on this link)\n"),
            );
          }
        },
        arpControl: (control) => {
          process.stdout.write(
            heading(
              `Control: symroute's ARP probes removed (${counted(control.removed, "rule")}), the next hop's MAC forgotten`,
            ),
          );
          process.stdout.write(
            "    The next hop ignores the node's own ARP requests again (their sender is not on the link's subnet):\n",
          );
          process.stdout.write(`${control.neighbours.map((n) => `    ${colourNeighbour(n)}`).join("\n")}\n`);
          process.stdout.write(`${formatMatrix(control.cells, { ok: pc.green("✓"), fail: pc.red("✗") })}\n`);
          process.stdout.write(
            `    ${pc.dim(`symroute apply again puts the probes back (exit ${control.reapply.code})`)}\n`,
          );
        },
      },
      { arpControl: true },
    );
    if (report.residue !== undefined) {
      process.stdout.write(heading("After symroute delete: the node compared with its start"));
      process.stdout.write(
        report.residue.length === 0
          ? `    ${pc.green("identical")} (ip -j link/addr/route/rule, sysctls, nftables ruleset)\n`
          : `${indent(report.residue.map(describeDifference).join("\n"))}\n`,
      );
    }
    const problems = scenarioProblems(report);
    if (problems.length === 0) {
      process.stdout.write(
        `\n${pc.green("✓")} case ${spec.case} behaved as expected; the namespaces are removed.\n`,
      );
    } else {
      failures += 1;
      for (const p of problems) process.stdout.write(`${pc.red("✗")} ${p}\n`);
    }
  }
  return failures === 0 ? EXIT.ok : EXIT.error;
}

export function registerLab(program: Command): void {
  const lab = program
    .command("lab")
    .description(
      "Build the article's topologies in network namespaces and show what symroute does to them.\n" +
        "Needs Linux, root, and the Debian packages iproute2 nftables iptables ipset conntrack.",
    )
    .addHelpText(
      "after",
      "\nExit codes: 0 ok (demo: every check passed), 1 error or a failed check; 130 or 143 after SIGINT or SIGTERM, once the lab's namespaces are removed.",
    );

  lab
    .command("demo")
    .description(
      "For each case: the topology, connectivity before, symroute's plan, apply, connectivity " +
        "after, delete, and a check that the node is back to its start. Everything is removed at the end.",
    )
    .addHelpText(
      "after",
      "\nExit codes: 0 every check passed, 1 error or a failed check; 130 or 143 after SIGINT or SIGTERM, once the lab's namespaces are removed.",
    )
    .addOption(caseOption("default: the four cases, then case 4 with the IPVS-like stand-in"))
    .addOption(kubeProxyOption())
    .addOption(firewallOption())
    .addOption(ipv4Option())
    .addOption(nodesOption())
    .action(async (opts) => {
      await runAndExit("text", async () => {
        await checkLabPrerequisites();
        tearDownOnSignals();
        // Without --case: the four cases, then case 4 with kube-proxy's IPVS mode (strict ARP on).
        const specs =
          opts.case === undefined
            ? [
                ...LAB_CASES.map((c) => specFrom({ ...opts, case: c })),
                ...(opts.kubeProxy === "ipvs-like"
                  ? []
                  : [specFrom({ ...opts, case: 4, kubeProxy: "ipvs-like" })]),
              ]
            : [specFrom({ ...opts, case: opts.case })];
        return demo(specs);
      });
    });

  lab
    .command("up")
    .description("Build one case's topology and leave it running; `symroute lab down` removes it.")
    .addHelpText(
      "after",
      "\nExit codes: 0 built and left running, 1 error; 130 or 143 after SIGINT or SIGTERM, once the lab's namespaces are removed.",
    )
    .addOption(caseOption(`default: ${DEFAULT_SPEC.case}`))
    .addOption(kubeProxyOption())
    .addOption(firewallOption())
    .addOption(ipv4Option())
    .addOption(nodesOption())
    .action(async (opts) => {
      await runAndExit("text", async () => {
        await checkLabPrerequisites();
        tearDownOnSignals();
        const spec = specFrom(opts);
        const topology = await buildTopology(spec, { persistent: true });
        const config = await writeLabConfig(topology);
        topology.detach();
        const cli = symrouteArgv().join(" ");
        process.stdout.write(
          `${pc.bold(CASE_TITLES[spec.case] ?? "")}  ${pc.dim(`(${describeSpec(spec)})`)}\n`,
        );
        process.stdout.write(`${topologyPicture(spec)}\n\nNamespaces:\n`);
        const width = Math.max(...Object.values(topology.namespaces).map((n) => n.length));
        for (const [host, ns] of Object.entries(topology.namespaces)) {
          process.stdout.write(`  ${host.padEnd(7)} ${ns.padEnd(width)}   enter: ip netns exec ${ns} bash\n`);
        }
        process.stdout.write(
          [
            "",
            `symroute's configuration: ${config}`,
            "Try:",
            ...nodesOf(spec).flatMap((n) =>
              ["plan", "apply"].map(
                (command) =>
                  `  ip netns exec ${topology.namespaceOf(n)} ${cli} ${command} -c ${config} --state-dir ${stateDirOf(topology, n)}`,
              ),
            ),
            "Servers: the pod serves TCP/UDP 8080, the node 8081, the client 9000 (echo).",
            `Remove it with: symroute lab down --prefix ${topology.prefix}   (or, when it is the only lab up: symroute lab down)`,
            "",
          ].join("\n"),
        );
        return EXIT.ok;
      });
    });

  lab
    .command("down")
    .description(
      "Remove a lab: its namespaces and the processes in them. Without --prefix or --all, the one lab run that no running process owns (a `lab up`'s); with several, it names them and removes nothing.",
    )
    .addHelpText(
      "after",
      "\nExit codes: 0 removed (or nothing to remove), 1 error, also when several lab runs are up and neither --prefix nor --all says which (nothing removed).",
    )
    .addOption(
      new Option(
        "--prefix <prefix>",
        'only the namespaces of one run, e.g. "srlab-1234-1-" (as `lab up` printed)',
      ).conflicts("all"),
    )
    .option(
      "--all",
      `every lab namespace on the machine (names starting with "${LAB_PREFIX}"), those of demos and tests running now included`,
    )
    .action(async (opts) => {
      await runAndExit("text", async () => {
        await checkLabPrerequisites();
        if (opts.prefix !== undefined && !opts.prefix.startsWith(LAB_PREFIX)) {
          throw new SymrouteError(
            "invalid-argument",
            `--prefix must start with "${LAB_PREFIX}", not ${JSON.stringify(opts.prefix)}`,
            {
              hint: "lab down only removes the lab's own namespaces",
            },
          );
        }
        const out: string[] = [];
        let prefix = opts.prefix ?? (opts.all === true ? LAB_PREFIX : undefined);
        if (prefix === undefined) {
          const choice = defaultDown(labRunsOf(await listLabNamespaces()), isRunning);
          if (choice.kind === "several") {
            throw new SymrouteError(
              "invalid-argument",
              `${choice.idle.length} lab runs are up; lab down removes one only when it is the only one: ${choice.idle.map(describeRun).join("; ")}`,
              {
                hint: `symroute lab down --prefix ${(choice.idle[0] as LabRun).prefix} removes one run; symroute lab down --all removes every lab namespace on the machine`,
              },
            );
          }
          for (const run of choice.inUse)
            out.push(`Left ${describeRun(run)}: its process is running (--prefix ${run.prefix} removes it).`);
          if (choice.kind === "remove") prefix = choice.run.prefix;
        }
        const removed = prefix === undefined ? [] : await removeLabNamespaces(prefix);
        out.unshift(
          removed.length === 0
            ? "No lab namespaces removed."
            : `Removed ${counted(removed.length, "namespace")}: ${removed.join(" ")}`,
        );
        process.stdout.write(`${out.join("\n")}\n`);
        return EXIT.ok;
      });
    });
}

/** A run as `lab down` names it: its prefix, its process, its hosts. */
function describeRun(run: LabRun): string {
  const hosts = run.namespaces.map((n) => (n.startsWith(run.prefix) ? n.slice(run.prefix.length) : n));
  return `${run.prefix} (${run.pid === undefined ? "" : `process ${run.pid}; `}${hosts.join(", ")})`;
}

/** Whether a process with this id exists (signal 0 only checks; EPERM: it exists, not ours). */
function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
