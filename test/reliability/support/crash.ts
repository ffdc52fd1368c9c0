// Crash-consistency trials: SIGKILL symroute at a random moment of `apply` or `delete`, then prove
// that the next run converges to exactly the desired state (no duplicates, `plan` in sync) and that
// `delete` restores the original node byte for byte. Shared by the test and scripts/reliability/crash.ts.

import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import {
  CLI,
  canonicalDump,
  dumpDifference,
  duplicateObjects,
  prng,
  run,
  type ReliabilityNode,
} from "./node.ts";

export type Phase = "apply" | "delete";
/** `process`: only symroute dies, its ip/nft children finish on their own; `group`: they die too. */
export type KillMode = "process" | "group";
/** Where the kill landed, judged from the node afterwards. */
export type Landing = "before-changes" | "partial" | "complete" | "exited-first";

export interface Baseline {
  /** The node before symroute, byte for byte. */
  readonly original: string;
  /** The node after an uninterrupted apply, canonicalised. */
  readonly converged: string;
  /** Milliseconds of an uninterrupted apply and delete, start to exit. */
  readonly applyMs: number;
  readonly deleteMs: number;
}

export interface TrialResult {
  readonly phase: Phase;
  readonly trial: number;
  readonly seed: number;
  readonly killMode: KillMode;
  readonly delayMs: number;
  readonly landing: Landing;
  /** The state file said an apply was under way when the kill landed. */
  readonly inProgressLeft: boolean;
  /** Files other than state.json and apply.lock left in the state directory after recovery. */
  readonly leftovers: readonly string[];
  readonly problems: readonly string[];
  readonly ms: number;
}

function timed(node: ReliabilityNode, args: readonly string[]): { ms: number; code: number; stderr: string } {
  const start = performance.now();
  const r = node.symroute(args);
  return { ms: performance.now() - start, code: r.code, stderr: r.stderr };
}

/** Applies and deletes once, uninterrupted: the reference state and the durations the kills are drawn from. */
export function measureBaseline(node: ReliabilityNode, config: string): Baseline {
  const original = node.dump();
  const applied = timed(node, ["apply", "-c", config]);
  if (applied.code !== 0) throw new Error(`baseline apply failed (${applied.code}): ${applied.stderr}`);
  const converged = canonicalDump(node.dump());
  const deleted = timed(node, ["delete"]);
  if (deleted.code !== 0) throw new Error(`baseline delete failed (${deleted.code}): ${deleted.stderr}`);
  const after = node.dump();
  if (after !== original) throw new Error(`baseline delete did not restore the node:\n${dumpDifference(original, after)}`);
  return { original, converged, applyMs: applied.ms, deleteMs: deleted.ms };
}

/** Waits until no process is left in the namespace (orphaned ip/nft children finishing their batch). */
async function namespaceQuiet(ns: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (run(["ip", "netns", "pids", ns]).stdout.trim() !== "") {
    if (Date.now() > deadline) throw new Error(`processes still running in ${ns} after ${timeoutMs} ms`);
    await delay(20);
  }
}

function stateFiles(stateDir: string): { inProgress: boolean; leftovers: string[] } {
  let inProgress = false;
  const leftovers: string[] = [];
  for (const sub of existsSync(stateDir) ? readdirSync(stateDir).filter((d) => d.startsWith("netns-")) : []) {
    for (const file of readdirSync(join(stateDir, sub))) {
      if (file === "state.json") {
        const text = readFileSync(join(stateDir, sub, file), "utf8");
        try {
          inProgress ||= (JSON.parse(text) as { inProgress?: boolean }).inProgress === true;
        } catch {
          leftovers.push(`${sub}/${file} (not JSON)`);
        }
      } else if (file !== "apply.lock") leftovers.push(`${sub}/${file}`);
    }
  }
  return { inProgress, leftovers };
}

/** Starts symroute, SIGKILLs it after `delayMs`, and waits until it and its children are gone. */
async function killDuring(
  node: ReliabilityNode,
  args: readonly string[],
  delayMs: number,
  mode: KillMode,
): Promise<{ exitedFirst: boolean }> {
  const child = spawn(
    "ip",
    ["netns", "exec", node.name, process.execPath, CLI, ...args, "--state-dir", node.stateDir],
    { stdio: "ignore", detached: mode === "group", env: { ...process.env, NO_COLOR: "1" } },
  );
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  let exitedFirst = false;
  await Promise.race([delay(delayMs), exited.then(() => (exitedFirst = true))]);
  if (!exitedFirst && child.pid !== undefined) {
    try {
      process.kill(mode === "group" ? -child.pid : child.pid, "SIGKILL");
    } catch {
      exitedFirst = true; // it exited between the check and the kill
    }
  }
  await exited;
  await namespaceQuiet(node.name);
  return { exitedFirst };
}

function landingOf(node: ReliabilityNode, baseline: Baseline, phase: Phase, exitedFirst: boolean): Landing {
  if (exitedFirst) return "exited-first";
  const now = node.dump();
  const start = phase === "apply" ? baseline.original : undefined;
  const end = phase === "apply" ? undefined : baseline.original;
  if (start !== undefined && now === start) return "before-changes";
  if (end !== undefined && now === end) return "complete";
  const converged = canonicalDump(now) === baseline.converged;
  if (phase === "apply") return converged ? "complete" : "partial";
  return converged ? "before-changes" : "partial";
}

/** The node must be converged: exit 0 from apply and plan, no duplicates, exactly the reference objects. */
function checkConverged(node: ReliabilityNode, config: string, baseline: Baseline, problems: string[]): void {
  const applied = node.symroute(["apply", "-c", config]);
  if (applied.code !== 0) problems.push(`apply after the crash exited ${applied.code}: ${applied.stderr.trim()}`);
  const plan = node.symroute(["plan", "-c", config]);
  if (plan.code !== 0) problems.push(`plan after the re-apply exited ${plan.code}: ${plan.stdout.slice(-2000)}`);
  problems.push(...duplicateObjects(node));
  const now = canonicalDump(node.dump());
  if (now !== baseline.converged) {
    problems.push(`owned objects differ from an uninterrupted apply:\n${dumpDifference(baseline.converged, now)}`);
  }
}

function checkDeleted(node: ReliabilityNode, baseline: Baseline, problems: string[], what: string): void {
  const deleted = node.symroute(["delete"]);
  if (deleted.code !== 0) problems.push(`${what} exited ${deleted.code}: ${deleted.stderr.trim()}`);
  const now = node.dump();
  if (now !== baseline.original) {
    problems.push(`${what} did not restore the original node:\n${dumpDifference(baseline.original, now)}`);
  }
}

export interface TrialOptions {
  readonly node: ReliabilityNode;
  readonly config: string;
  readonly baseline: Baseline;
  readonly phase: Phase;
  readonly trial: number;
  /** The trial's window out of `windows`: the delay is drawn within it, so n trials cover 0..duration. */
  readonly windows: number;
  readonly seed: number;
}

/**
 * One trial. apply: kill apply; apply again (converged, no duplicates, plan 0); delete (original).
 * delete: apply; kill delete; (odd trials: delete again, original); apply (converged); delete (original).
 */
export async function crashTrial(options: TrialOptions): Promise<TrialResult> {
  const { node, config, baseline, phase, trial, windows, seed } = options;
  const started = performance.now();
  const random = prng(seed);
  const duration = phase === "apply" ? baseline.applyMs : baseline.deleteMs;
  const window = trial % windows;
  const delayMs = Math.round((duration * (window + random())) / windows);
  const killMode: KillMode = random() < 0.5 ? "process" : "group";
  const problems: string[] = [];
  if (phase === "delete") {
    const applied = node.symroute(["apply", "-c", config]);
    if (applied.code !== 0) problems.push(`set-up apply exited ${applied.code}: ${applied.stderr.trim()}`);
  }
  const args = phase === "apply" ? ["apply", "-c", config] : ["delete"];
  const { exitedFirst } = await killDuring(node, args, delayMs, killMode);
  const landing = landingOf(node, baseline, phase, exitedFirst);
  const { inProgress } = stateFiles(node.stateDir);
  if (phase === "apply") {
    checkConverged(node, config, baseline, problems);
    checkDeleted(node, baseline, problems, "delete after the re-apply");
  } else {
    // Odd trials also prove that a second delete alone cleans up after a killed one.
    if (trial % 2 === 1) checkDeleted(node, baseline, problems, "delete after the crash");
    checkConverged(node, config, baseline, problems);
    checkDeleted(node, baseline, problems, "delete after the re-apply");
  }
  const { leftovers } = stateFiles(node.stateDir);
  return {
    phase,
    trial,
    seed,
    killMode,
    delayMs,
    landing,
    inProgressLeft: inProgress,
    leftovers,
    problems,
    ms: Math.round(performance.now() - started),
  };
}

export function summarise(results: readonly TrialResult[]): string {
  const out: string[] = [];
  for (const phase of ["apply", "delete"] as const) {
    const of = results.filter((r) => r.phase === phase);
    if (of.length === 0) continue;
    const count = (landing: Landing): number => of.filter((r) => r.landing === landing).length;
    const failed = of.filter((r) => r.problems.length > 0);
    out.push(
      `${phase}: ${of.length} trials, ${failed.length} failed; kill landed before changes ${count("before-changes")}, ` +
        `mid-way ${count("partial")}, after all changes ${count("complete")}, after exit ${count("exited-first")}; ` +
        `state file left "inProgress" ${of.filter((r) => r.inProgressLeft).length}; ` +
        `kill modes process ${of.filter((r) => r.killMode === "process").length} / group ${of.filter((r) => r.killMode === "group").length}`,
    );
    for (const r of failed) out.push(`  FAILED ${phase} trial ${r.trial} seed ${r.seed} (${r.killMode}, ${r.delayMs} ms, ${r.landing}): ${r.problems.join("; ")}`);
  }
  return out.join("\n");
}
