// `symroute agent`: wiring only; the agent lives in src/agent/.

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Command, Option } from "@commander-js/extra-typings";
import { loadConfigOrThrow } from "../../config/index.ts";
import { createEngine } from "../../engine/engine.ts";
import { SymrouteError } from "../../model/errors.ts";
import { startAgent, type Agent } from "../../agent/agent.ts";
import { systemClock } from "../../agent/clock.ts";
import { parseDuration } from "../../agent/duration.ts";
import { DEFAULT_DEBOUNCE_MS } from "../../agent/reconcile-loop.ts";
import { DEFAULT_LISTEN, parseListen } from "../../agent/http.ts";
import type { KubernetesWiring } from "../../agent/config-source.ts";
import { createLogger, parseLogLevel } from "../../agent/logger.ts";
import { createMetrics } from "../../agent/metrics.ts";
import { trackOwnedRpFilters } from "../../agent/owned-sysctls.ts";
import { ReadCache } from "../../agent/read-cache.ts";
import { DEFAULT_STATE_DIR } from "../../adapters/state-file.ts";
import { runTool } from "../../adapters/exec.ts";
import { nftRulesFromText } from "../../adapters/kernel.ts";
import { NFT_TABLE } from "../../model/firewall.ts";
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
import { commanderParser, EXIT, runAndExit, stateDirOption } from "../output.ts";

export function registerAgent(program: Command): void {
  program
    .command("agent")
    .description(
      "Keep this node converged: at start, on config file and kernel changes, on a periodic resync, and " +
        "(with --kubernetes) on SymrouteNetwork and MetalLB pool changes. SIGTERM leaves routing in place.",
    )
    .addHelpText(
      "after",
      "\nExit codes: 0 stopped by SIGTERM or SIGINT (with --cleanup-on-exit, after removing what symroute owns), 1 error: a bad option or configuration at start, or with --cleanup-on-exit a removal that failed or was refused (docs/agent.md).",
    )
    .option(
      "-c, --config <file>",
      "configuration file (global settings and local networks); required without --kubernetes",
    )
    .addOption(stateDirOption())
    .option("--listen <host:port>", "health, readiness and metrics endpoints (read-only)", DEFAULT_LISTEN)
    .addOption(
      new Option("--resync-interval <duration>", "full resync period, e.g. 60s, 5m; 0 turns it off")
        .default(60_000, "60s")
        .argParser(commanderParser((v) => parseDuration(v, "--resync-interval"))),
    )
    .addOption(
      new Option("--debounce <duration>", "window in which change events are merged")
        .default(DEFAULT_DEBOUNCE_MS, `${DEFAULT_DEBOUNCE_MS}ms`)
        .argParser(commanderParser((v) => parseDuration(v, "--debounce"))),
    )
    .option(
      "--no-kernel-events",
      "do not watch kernel changes (`ip monitor`, `nft monitor`): no read cache, no partial nft transactions; rely on the resync",
    )
    .option(
      "--cleanup-on-exit",
      "on SIGTERM/SIGINT remove everything symroute owns (default: leave routing in place)",
    )
    .addOption(
      kubernetesOption("take networks from SymrouteNetwork resources and MetalLB pools in the cluster"),
    )
    .addOption(nodeNameOption())
    .addOption(kubeconfigOption())
    .addOption(metallbNamespaceOption())
    .option(
      "--proc-sys <dir>",
      "root of the sysctl tree (default /proc/sys; a container mounts the host's elsewhere)",
    )
    .addOption(
      new Option("--log-level <level>", "debug, info, warn or error")
        .default("info")
        .argParser(commanderParser(parseLogLevel)),
    )
    .action(async (opts, command) => {
      refuseKubernetesFlagsWithout(command);
      await runAndExit("text", async () => {
        if (opts.config === undefined && opts.kubernetes !== true) {
          throw new SymrouteError("invalid-argument", "agent needs -c/--config FILE (or --kubernetes)", {
            hint: "see deploy/symroute.example.yaml for an example",
          });
        }
        const nodeName = opts.kubernetes === true ? requireNodeName(opts.nodeName) : undefined;
        const listen = parseListen(opts.listen);
        // A file that is wrong at start is an error now (exit 1), not a silent wait.
        let stateDir = opts.stateDir;
        if (opts.config !== undefined) {
          let text: string;
          try {
            text = await readFile(opts.config, "utf8");
          } catch (cause) {
            throw configFileReadError(opts.config, cause);
          }
          // Checked even with --state-dir: a file that is wrong at start is an error, not a wait.
          const fileConfig = loadConfigOrThrow(text, opts.config);
          stateDir ??= fileConfig.stateDir;
        }
        const logger = createLogger(opts.logLevel);
        // Listen for signals before starting anything, so that a SIGTERM during start-up also stops cleanly.
        const signalled = new Promise<NodeJS.Signals>((resolve) => {
          process.once("SIGTERM", () => resolve("SIGTERM"));
          process.once("SIGINT", () => resolve("SIGINT"));
        });
        // A container sees /proc/sys read-only; the DaemonSet mounts the host's /proc/sys/net elsewhere.
        // The agent keeps what it read while its kernel monitors show nothing changed since
        // (read-cache.ts); it tells its own nft transactions from others' by the tools' process ids.
        // Without the monitors nothing kept could be proven good: no cache, and the engine reads
        // only what each step needs (the cache reads both families, for a next plan).
        const metrics = createMetrics({ processMetrics: true });
        const readCache: ReadCache | undefined = !opts.kernelEvents
          ? undefined
          : new ReadCache({
              ...(opts.procSys === undefined ? {} : { procSys: opts.procSys }),
              onRead: (from) => metrics.nodeReads.inc({ from }),
              onNftTransaction: (kind) => metrics.nftTransactions.inc({ kind }),
              onChainFrom: (from) => metrics.nftChainsVerified.inc({ from }),
              listNftChain: async (family, chain) =>
                nftRulesFromText(
                  (
                    await runTool("nft", ["-t", "list", "chain", family, NFT_TABLE, chain], {
                      onSpawn: (pid) => readCache?.ownProcess(pid),
                    })
                  ).stdout,
                ),
            });
        const deps = createNodeDeps({
          ...(stateDir === undefined ? {} : { stateDir }),
          ...(opts.procSys === undefined ? {} : { procSys: opts.procSys }),
          onSpawn: (pid) => readCache?.ownProcess(pid),
          keepStateReads: true,
        });
        // The state file says which interfaces' rp_filter symroute owns: their events count.
        const owned = trackOwnedRpFilters(deps.store);
        const kernel = readCache === undefined ? deps.kernel : readCache.wrap(deps.kernel);
        const engine = createEngine({ ...deps, store: owned.store, kernel });
        const kubernetes =
          nodeName !== undefined
            ? await kubernetesWiring({
                nodeName,
                kubeconfig: opts.kubeconfig,
                metallbNamespace: opts.metallbNamespace,
                stateDir: stateDir ?? DEFAULT_STATE_DIR,
              })
            : undefined;
        const agent: Agent = await startAgent({
          engine,
          logger,
          metrics,
          ...(readCache === undefined ? {} : { readCache }),
          rpFilterOwned: owned.interfaces,
          stateFile: deps.store,
          listen,
          resyncMs: opts.resyncInterval,
          debounceMs: opts.debounce,
          kernelEvents: opts.kernelEvents,
          ...(opts.config === undefined ? {} : { configFile: opts.config }),
          ...(kubernetes === undefined ? {} : { kubernetes }),
        });
        const signal = await signalled;
        logger.info({ signal }, "signal received");
        await agent.stop({ cleanup: opts.cleanupOnExit === true });
        logger.info("agent stopped");
        return EXIT.ok;
      });
    });
}

/**
 * The cluster as a config source. Loaded only with --kubernetes: the Kubernetes client is most of
 * the agent's memory (about 70 MiB resident of code and heap, docs/agent.md), which a node without
 * Kubernetes should not pay.
 */
async function kubernetesWiring(options: {
  readonly nodeName: string;
  readonly kubeconfig: string | undefined;
  readonly metallbNamespace: string;
  readonly stateDir: string;
}): Promise<KubernetesWiring> {
  const [{ fileClusterCache }, { discoverKubeConfig }, { createDiscoveringSource, createKubernetesSource }] =
    await Promise.all([
      import("../../agent/kubernetes/cluster-cache.ts"),
      import("../../agent/kubernetes/kubeconfig.ts"),
      import("../../agent/kubernetes/source.ts"),
    ]);
  const { nodeName, kubeconfig, metallbNamespace } = options;
  // An explicit --kubeconfig that is missing is a mistake at start (exit 1); otherwise the agent
  // keeps looking, with backoff, and says where it looked.
  if (kubeconfig !== undefined && !discoverKubeConfig(kubeconfig).found) {
    throw new SymrouteError("invalid-argument", `--kubeconfig ${kubeconfig}: no such file`, {
      hint: "correct the path, or leave --kubeconfig out: the agent then looks in $KUBECONFIG, in ~/.kube/config and in-cluster",
    });
  }
  return {
    nodeName,
    cache: fileClusterCache(join(options.stateDir, "kubernetes-cache.json")),
    createSource: (callbacks) =>
      createDiscoveringSource({
        discover: () => discoverKubeConfig(kubeconfig),
        clock: systemClock,
        onError: callbacks.onError,
        create: (found) =>
          createKubernetesSource({
            kubeConfig: found.kubeConfig,
            from: found.from,
            nodeName,
            metallbNamespace,
            clock: systemClock,
            ...callbacks,
          }),
      }),
  };
}
