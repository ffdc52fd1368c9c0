// Reading the node before the command's modules have loaded. A one-shot `plan`, `apply` or `delete`
// spends tens of milliseconds loading and compiling its modules and parsing the configuration; the
// read-only tools that observe the node (`ip -4`/`ip -6` batches, `nft list table`) do not depend on
// either, so main.ts starts them first and the kernel adapter takes their results when it asks for
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

const key = (file: string, args: readonly string[], input: string): string =>
  JSON.stringify([file, args, input]);

let started: Promise<EarlyRead | undefined> | undefined;

/** For `symroute COMMAND ARGS...`: starts the reads when the command is one that will make them. */
export function startEarlyRead(command: string | undefined, args: readonly string[]): void {
  if (started !== undefined) return;
  if (command !== "plan" && command !== "apply" && command !== "delete") return;
  if (args.includes("-h") || args.includes("--help")) return;
  const locks = command !== "plan" && !args.includes("--dry-run");
  started = (async () => {
    let release: (() => Promise<void>) | undefined;
    if (locks) {
      const lock = await tryNamespaceLock(APPLY_LOCK_NAME).catch(() => undefined);
      if (lock === undefined || !isLock(lock)) return undefined;
      release = () => lock.release();
    }
    const results = new Map<string, Promise<ToolResult>>();
    const start = (file: string, args: readonly string[], input: string): void => {
      const result = runTool(file, args, { input, allowFailure: true });
      result.catch(() => undefined); // a missing tool is reported when (and if) the result is used
      results.set(key(file, args, input), result);
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
    const run: ToolRunner = (file, args, options = {}) => {
      const k = key(file, args, options.input ?? "");
      const early = results.get(k);
      if (early === undefined) return runTool(file, args, options);
      results.delete(k);
      return early.then((result) => {
        if (result.code !== 0 && options.allowFailure !== true) throw toolError(file, args, result);
        return result;
      });
    };
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
