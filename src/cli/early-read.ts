// Reading the node before the command's modules have loaded. A one-shot `plan`, `apply` or `delete`
// spends tens of milliseconds loading and compiling its modules and parsing the configuration; the
// read-only tools that observe the node (`ip -4`/`ip -6` batches, `nft list table`) do not depend on
// either, so they start first (early-start.ts) and the kernel adapter takes their results when it asks for
// exactly the same command. Each early result is used once: later reads (verification) run afresh.
// An apply or delete takes the namespace lock before it reads, as it would later anyway: what is read
// early is then what the run changes. When the lock is busy, nothing is read early and the engine
// waits for the lock the usual way.

import { runTool, toolError, type ToolResult, type ToolRunner } from "../adapters/exec.ts";
import { isLock, tryNamespaceLock } from "../adapters/namespace-lock.ts";
import {
  IPTABLES_READ_ARGS,
  KUBE_PROXY_IPTABLES_ARGS,
  KUBE_PROXY_NFT_ARGS,
  NFT_READ_ARGS,
  batchInput,
  ipReadArgs,
  ipReadCommands,
} from "../adapters/node-reads.ts";
import { APPLY_LOCK_NAME } from "../adapters/state-file.ts";

export interface EarlyRead {
  /** A tool runner that answers the early commands from their results, once, and runs the rest. */
  readonly run: ToolRunner;
  /** The namespace lock, taken before reading (apply and delete, not with --dry-run). */
  readonly release?: () => Promise<void>;
}

let started: Promise<EarlyRead | undefined> | undefined;

/**
 * Whether `symroute COMMAND ARGS...` reads the node early, and whether it takes the lock first
 * (the commands that change the node); undefined: no early read.
 */
export function earlyReadFor(
  command: string | undefined,
  args: readonly string[],
): { readonly lock: boolean } | undefined {
  if (command !== "plan" && command !== "apply" && command !== "delete") return undefined;
  if (args.includes("-h") || args.includes("--help")) return undefined;
  return { lock: command !== "plan" && !args.includes("--dry-run") };
}

/** A command started early: its input and its result. */
export interface EarlyCommand {
  readonly input: string;
  readonly result: Promise<ToolResult>;
}

/** The key of a command in the map answerFromEarly takes: the tool and its arguments. */
export const commandKey = (file: string, args: readonly string[]): string => JSON.stringify([file, args]);

/**
 * A runner that answers a command from its early result (once: a later identical command runs
 * afresh) and runs every other command with `fallback`. A command matches when its tool,
 * arguments and input are the same (the input is compared, never copied into a key: payloads run
 * to megabytes). An early result keeps the exit status the tool had: it fails the caller only when
 * the caller does not allow failure, as `fallback` would.
 */
export function answerFromEarly(early: Map<string, EarlyCommand>, fallback: ToolRunner): ToolRunner {
  return (file, args, options = {}) => {
    const k = commandKey(file, args);
    const started = early.get(k);
    if (started === undefined || started.input !== (options.input ?? ""))
      return fallback(file, args, options);
    early.delete(k);
    return started.result.then((r) => {
      if (r.code !== 0 && options.allowFailure !== true) throw toolError(file, args, r);
      return r;
    });
  };
}

/** For `symroute COMMAND ARGS...`: starts the reads when the command is one that will make them. */
export function startEarlyRead(command: string | undefined, args: readonly string[]): void {
  if (started !== undefined) return;
  const plan = earlyReadFor(command, args);
  if (plan === undefined) return;
  const locks = plan.lock;
  started = (async () => {
    let release: (() => Promise<void>) | undefined;
    if (locks) {
      const lock = await tryNamespaceLock(APPLY_LOCK_NAME).catch(() => undefined);
      if (lock === undefined || !isLock(lock)) return undefined;
      release = () => lock.release();
    }
    const results = new Map<string, EarlyCommand>();
    const start = (file: string, args: readonly string[], input: string): void => {
      const result = runTool(file, args, { input, allowFailure: true });
      result.catch(() => undefined); // a missing tool is reported when (and if) the result is used
      results.set(commandKey(file, args), { input, result });
    };
    start("ip", ipReadArgs(4), batchInput(ipReadCommands(true, true)));
    start("ip", ipReadArgs(6), batchInput(ipReadCommands(false, true)));
    start("nft", NFT_READ_ARGS, "");
    // The iptables front end's chains are read on a first run, or when it holds symroute's rules.
    start("iptables-save", IPTABLES_READ_ARGS, "");
    start("ip6tables-save", IPTABLES_READ_ARGS, "");
    // kube-proxy's traces are read for `kubeProxyMode: auto`, the default.
    start("nft", KUBE_PROXY_NFT_ARGS, "");
    start("iptables-save", KUBE_PROXY_IPTABLES_ARGS, "");
    const run = answerFromEarly(results, runTool);
    return release === undefined ? { run } : { run, release };
  })();
  started.catch(() => undefined);
}

/** What startEarlyRead started, if anything (undefined: read the usual way). */
export function takeEarlyRead(): Promise<EarlyRead | undefined> {
  const early = started ?? Promise.resolve(undefined);
  started = undefined;
  return early.catch(() => undefined);
}
