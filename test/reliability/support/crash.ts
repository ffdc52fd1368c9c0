// Crash-consistency trials: SIGKILL symroute at a random moment of `apply` or `delete`, then prove
// that the next run converges to exactly the desired state (no duplicates, `plan` in sync) and that
// `delete` restores the original node byte for byte. Shared by the test and scripts/reliability/crash.ts.

import { execFileSync, spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import type { FaultTools, Hold, PayloadTool } from "./fault-tools.ts";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { canonicalDump, CLI, dumpDifference, type Netns, run } from "../../support/netns.ts";
import { prng } from "../../support/prng.ts";
import { duplicateObjects } from "./node.ts";

export type Phase = "apply" | "delete";
/** `process`: only symroute dies, its ip/nft children finish on their own; `group`: they die too. */
export type KillMode = "process" | "group";
/**
 * Where the kill landed, judged from the node afterwards: before any kernel change, with the kernel
 * partly changed, with every change made (`uncommitted` says whether the run had yet to commit), or
 * never: the run had exited before the signal was sent.
 */
export type Landing = "before-changes" | "partial" | "complete" | "exited-first";

/**
 * A kill that tests recovery from the middle of a change: the kernel partly changed, or fully changed
 * with the run not yet committed (an apply's state file still says "inProgress"; a delete's state
 * file is still there). Kills before any change, after the commit, or after exit are counted apart:
 * they prove nothing about crash recovery.
 */
export function landedMidChange(r: Pick<TrialResult, "landing" | "uncommitted">): boolean {
  return r.landing === "partial" || (r.landing === "complete" && r.uncommitted);
}

export interface Baseline {
  /** The node before symroute, byte for byte. */
  readonly original: string;
  /** The node after an uninterrupted apply, canonicalised. */
  readonly converged: string;
  /** Milliseconds of an uninterrupted apply and delete, start to exit. */
  readonly applyMs: number;
  readonly deleteMs: number;
  /** When the first payload (ip -batch, nft -f, *-restore) started, from the start. */
  readonly applyChangesAtMs: number;
  readonly deleteChangesAtMs: number;
  /** When the last payload (ip -batch, nft -f, *-restore) was done, from the start. */
  readonly applyPayloadsEndMs: number;
  readonly deletePayloadsEndMs: number;
  /** Each payload (ip -batch, nft -f, *-restore) and when it was done, from the start, in order. */
  readonly applyPayloadEnds: readonly PayloadEnd[];
  readonly deletePayloadEnds: readonly PayloadEnd[];
}

export interface PayloadEnd {
  readonly tool: PayloadTool;
  /** The n-th payload of that tool in the run (a tool's payloads run one after another). */
  readonly call: number;
  readonly atMs: number;
}

export interface TrialResult {
  readonly phase: Phase;
  readonly trial: number;
  readonly seed: number;
  readonly killMode: KillMode;
  /** From the start of the run, or from the start of its first payload (`afterChangesStart`). */
  readonly delayMs: number;
  readonly afterChangesStart: boolean;
  /** The payload after which the run was held until the kill (kills from the changes' start). */
  readonly holdAfter?: string;
  /**
   * The kill found the run held after that payload (fault-tools.ts, SR_FAULT_HOLD): the timer was
   * late, the kill landed right after that payload.
   */
  readonly killedAtHold: boolean;
  readonly landing: Landing;
  /** Payloads that had started, and that had ended, when the signal was sent (from the trace). */
  readonly payloadsStarted: number;
  readonly payloadsEnded: number;
  /** The state file said an apply was under way when the kill landed. */
  readonly inProgressLeft: boolean;
  /** The run had not committed: apply, its state says "inProgress"; delete, its state file is there. */
  readonly uncommitted: boolean;
  /** Files other than state.json and apply.lock left in the state directory after recovery. */
  readonly leftovers: readonly string[];
  readonly problems: readonly string[];
  readonly ms: number;
}

/**
 * Runs symroute to the end and notes, from the wrappers' trace, when its first payload started and
 * its last one ended: the kernel changes. Everything before is start-up, reading and planning.
 */
async function timed(
  node: Netns,
  args: readonly string[],
  tools: FaultTools,
): Promise<{
  ms: number;
  changesAtMs: number;
  payloadsEndMs: number;
  payloadEnds: PayloadEnd[];
  code: number;
}> {
  const traceDir = mkdtempSync(join(tmpdir(), "symroute-trace-"));
  const trace = join(traceDir, "trace");
  const startedAt = Date.now();
  const start = performance.now();
  const child = spawn(
    "ip",
    ["netns", "exec", node.name, process.execPath, CLI, ...args, "--state-dir", node.stateDir],
    {
      stdio: "ignore",
      env: { ...process.env, NO_COLOR: "1", ...tools.env(undefined, { trace }) },
    },
  );
  let code: number | undefined;
  child.on("exit", (c) => (code = c ?? 1));
  await new Promise((resolve) => child.on("exit", resolve));
  const ms = performance.now() - start;
  const events = readTrace(trace);
  rmSync(traceDir, { recursive: true, force: true });
  const starts = events.filter((e) => e.what === "start").map((e) => e.atMs);
  const ends = events.filter((e) => e.what === "end").map((e) => e.atMs);
  if (starts.length === 0 || ends.length === 0)
    throw new Error(`symroute ${args.join(" ")} ran no payload: nothing to time`);
  return {
    ms,
    changesAtMs: Math.min(...starts) - startedAt,
    payloadsEndMs: Math.max(...ends) - startedAt,
    payloadEnds: payloadEnds(events, startedAt),
    code: code ?? 1,
  };
}

/** Each payload's end in the trace, numbered per tool (a tool's payloads run one after another). */
function payloadEnds(events: ReturnType<typeof readTrace>, startedAt: number): PayloadEnd[] {
  const calls = new Map<string, number>();
  const out: PayloadEnd[] = [];
  for (const e of events) {
    if (e.what !== "end") continue;
    const call = (calls.get(e.tool) ?? 0) + 1;
    calls.set(e.tool, call);
    out.push({ tool: e.tool as PayloadTool, call, atMs: e.atMs - startedAt });
  }
  return out.sort((a, b) => a.atMs - b.atMs);
}

/** The wrappers' trace (fault-tools.ts, SR_FAULT_TRACE): one entry per payload start and end (and hold). */
function readTrace(file: string): { tool: string; what: "start" | "end" | "hold"; atMs: number }[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [tool = "", what, ns = "0"] = l.split(" ");
      return {
        tool,
        what: what === "end" || what === "hold" ? what : "start",
        atMs: Number(BigInt(ns) / 1_000_000n),
      };
    });
}

/** Applies and deletes once, uninterrupted: the reference state and the durations the kills are drawn from. */
export async function measureBaseline(node: Netns, config: string, tools: FaultTools): Promise<Baseline> {
  const original = node.dump();
  const applied = await timed(node, ["apply", "-c", config], tools);
  if (applied.code !== 0) throw new Error(`baseline apply failed (${applied.code})`);
  const converged = canonicalDump(node.dump());
  const deleted = await timed(node, ["delete"], tools);
  if (deleted.code !== 0) throw new Error(`baseline delete failed (${deleted.code})`);
  const after = node.dump();
  if (after !== original)
    throw new Error(`baseline delete did not restore the node:\n${dumpDifference(original, after)}`);
  return {
    original,
    converged,
    applyMs: applied.ms,
    applyChangesAtMs: applied.changesAtMs,
    deleteMs: deleted.ms,
    deleteChangesAtMs: deleted.changesAtMs,
    applyPayloadsEndMs: applied.payloadsEndMs,
    deletePayloadsEndMs: deleted.payloadsEndMs,
    applyPayloadEnds: applied.payloadEnds,
    deletePayloadEnds: deleted.payloadEnds,
  };
}

/** Waits until no process is left in the namespace (orphaned ip/nft children finishing their batch). */
async function namespaceQuiet(ns: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (run(["ip", "netns", "pids", ns]).stdout.trim() !== "") {
    if (Date.now() > deadline) throw new Error(`processes still running in ${ns} after ${timeoutMs} ms`);
    await delay(20);
  }
}

function stateFiles(stateDir: string): { inProgress: boolean; stateLeft: boolean; leftovers: string[] } {
  let inProgress = false;
  let stateLeft = false;
  const leftovers: string[] = [];
  for (const sub of existsSync(stateDir) ? readdirSync(stateDir).filter((d) => d.startsWith("netns-")) : []) {
    for (const file of readdirSync(join(stateDir, sub))) {
      if (file === "state.json") {
        stateLeft = true;
        const text = readFileSync(join(stateDir, sub, file), "utf8");
        try {
          inProgress ||= (JSON.parse(text) as { inProgress?: boolean }).inProgress === true;
        } catch {
          leftovers.push(`${sub}/${file} (not JSON)`);
        }
      } else if (file !== "apply.lock") leftovers.push(`${sub}/${file}`);
    }
  }
  return { inProgress, stateLeft, leftovers };
}

/**
 * Starts symroute, SIGKILLs it `delayMs` after its start (or, with `afterChangesStart`, after its
 * first payload started: the kernel changes have begun), and waits until it and its
 * children are gone. With `holdAfter`, the wrapper of that payload waits once its tool is done
 * until the kill was sent: the run cannot commit or exit before the kill.
 */
async function killDuring(
  node: Netns,
  args: readonly string[],
  delayMs: number,
  mode: KillMode,
  afterChangesStart: boolean,
  tools: FaultTools,
  holdAfter: Omit<Hold, "fifo"> | undefined,
): Promise<{ exitedFirst: boolean; payloadsStarted: number; payloadsEnded: number; killedAtHold: boolean }> {
  const traceDir = mkdtempSync(join(tmpdir(), "symroute-trace-"));
  const trace = join(traceDir, "trace");
  const fifo = join(traceDir, "hold");
  // Opened read-write: the open does not wait for the wrapper, and the release line written after
  // the kill stays in the fifo until a wrapper that reaches its hold later (a process-mode kill
  // leaves the tool finishing its payload) reads it.
  let holdFd: number | undefined;
  if (holdAfter !== undefined) {
    execFileSync("mkfifo", [fifo]);
    holdFd = openSync(fifo, "r+");
  }
  const hold = holdAfter === undefined ? undefined : { ...holdAfter, fifo };
  const child = spawn(
    "ip",
    ["netns", "exec", node.name, process.execPath, CLI, ...args, "--state-dir", node.stateDir],
    {
      stdio: "ignore",
      detached: mode === "group",
      env: { ...process.env, NO_COLOR: "1", ...tools.env(undefined, { trace, ...(hold && { hold }) }) },
    },
  );
  let exitCode: number | null | undefined;
  const exited = new Promise<"exited">((resolve) =>
    child.on("exit", (code) => {
      exitCode = code;
      resolve("exited");
    }),
  );
  if (afterChangesStart) {
    // A load-independent anchor: the moment this very run starts changing the kernel.
    while (exitCode === undefined && !readTrace(trace).some((e) => e.what === "start")) await delay(2);
  }
  let exitedFirst =
    exitCode !== undefined || (await Promise.race([delay(delayMs, "timer" as const), exited])) === "exited";
  const atKill = readTrace(trace);
  if (!exitedFirst && child.pid !== undefined) {
    try {
      process.kill(mode === "group" ? -child.pid : child.pid, "SIGKILL");
    } catch {
      exitedFirst = true; // it exited between the check and the kill
    }
  }
  if (holdFd !== undefined) writeSync(holdFd, "release\n");
  await exited;
  // \`ip netns exec\` exits with the signal of the process it ran: no signal means symroute ended on its own.
  if (!exitedFirst && child.signalCode === null && exitCode !== null) exitedFirst = true;
  await namespaceQuiet(node.name);
  if (holdFd !== undefined) closeSync(holdFd);
  rmSync(traceDir, { recursive: true, force: true });
  return {
    exitedFirst,
    payloadsStarted: atKill.filter((e) => e.what === "start").length,
    payloadsEnded: atKill.filter((e) => e.what === "end").length,
    killedAtHold: !exitedFirst && atKill.some((e) => e.what === "hold"),
  };
}

function landingOf(node: Netns, baseline: Baseline, phase: Phase, exitedFirst: boolean): Landing {
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
function checkConverged(node: Netns, config: string, baseline: Baseline, problems: string[]): void {
  const applied = node.symroute(["apply", "-c", config]);
  if (applied.code !== 0)
    problems.push(`apply after the crash exited ${applied.code}: ${applied.stderr.trim()}`);
  const plan = node.symroute(["plan", "-c", config]);
  if (plan.code !== 0)
    problems.push(
      `plan after the re-apply exited ${plan.code}: ${plan.stdout.slice(-2000)}${plan.stderr.trim()}`,
    );
  problems.push(...duplicateObjects(node));
  const now = canonicalDump(node.dump());
  if (now !== baseline.converged) {
    problems.push(
      `owned objects differ from an uninterrupted apply:\n${dumpDifference(baseline.converged, now)}`,
    );
  }
}

function checkDeleted(node: Netns, baseline: Baseline, problems: string[], what: string): void {
  const deleted = node.symroute(["delete"]);
  if (deleted.code !== 0) problems.push(`${what} exited ${deleted.code}: ${deleted.stderr.trim()}`);
  const now = node.dump();
  if (now !== baseline.original) {
    problems.push(`${what} did not restore the original node:\n${dumpDifference(baseline.original, now)}`);
  }
}

export interface TrialOptions {
  readonly node: Netns;
  readonly config: string;
  readonly baseline: Baseline;
  readonly tools: FaultTools;
  readonly phase: Phase;
  readonly trial: number;
  /** How many trials there are per phase: the delays of n trials are spread over the range. */
  readonly windows: number;
  readonly seed: number;
}

/**
 * One trial. apply: kill apply; apply again (converged, no duplicates, plan 0); delete (original).
 * delete: apply; kill delete; (odd trials: delete again, original); apply (converged); delete (original).
 */
export async function crashTrial(options: TrialOptions): Promise<TrialResult> {
  const { node, config, baseline, phase, trial, windows, seed, tools } = options;
  const started = performance.now();
  const random = prng(seed);
  // One trial in four (0, 4, 8, ...): from the start, anywhere in 0..duration of an uninterrupted
  // run (start-up, reads and planning included), nothing held: the truly random moments, which can
  // find windows nobody named. The others: from the moment this run starts changing the kernel (its
  // state file says "inProgress"), anywhere until its last payload ended in an uninterrupted run: a
  // uniform draw from the start rarely hits the changes, and the machine's load moves them. These
  // runs are held (fault-tools.ts, SR_FAULT_HOLD) until the kill was sent once the payload the kill
  // is aimed at is done: the one that ended, in the uninterrupted run, first at or after the drawn
  // moment. On a loaded machine the timer fires late, or the test process sees the first payload
  // late; without the hold the run would have gone on, often to its commit and exit, proving
  // nothing. A kill that finds the run held lands with that payload done and the run not committed
  // (its ip batches run one after another, its firewall payload alongside them): still mid-change,
  // and still spread over the payloads as the draw was. Either way the range is cut into slices and each trial draws within its own slice, so
  // n trials cover it.
  const duration = phase === "apply" ? baseline.applyMs : baseline.deleteMs;
  const changesAt = phase === "apply" ? baseline.applyChangesAtMs : baseline.deleteChangesAtMs;
  const payloadsEnd = phase === "apply" ? baseline.applyPayloadsEndMs : baseline.deletePayloadsEndMs;
  const fromStart = trial % 4 === 0;
  const afterChangesStart = !fromStart;
  const range = fromStart ? duration : Math.max(1, payloadsEnd - changesAt);
  const startTrials = Math.ceil(windows / 4);
  const slices = Math.max(1, fromStart ? startTrials : windows - startTrials);
  const index = fromStart ? trial / 4 : trial - Math.floor(trial / 4) - 1;
  const slice = index % slices;
  const delayMs = Math.round((range * (slice + random())) / slices);
  const killMode: KillMode = random() < 0.5 ? "process" : "group";
  const problems: string[] = [];
  if (phase === "delete") {
    const applied = node.symroute(["apply", "-c", config]);
    if (applied.code !== 0) problems.push(`set-up apply exited ${applied.code}: ${applied.stderr.trim()}`);
  }
  const args = phase === "apply" ? ["apply", "-c", config] : ["delete"];
  const ends = phase === "apply" ? baseline.applyPayloadEnds : baseline.deletePayloadEnds;
  const aimedAt = ends.find((end) => end.atMs >= changesAt + delayMs) ?? ends[ends.length - 1];
  const holdAfter =
    afterChangesStart && aimedAt !== undefined ? { tool: aimedAt.tool, call: aimedAt.call } : undefined;
  const { exitedFirst, payloadsStarted, payloadsEnded, killedAtHold } = await killDuring(
    node,
    args,
    delayMs,
    killMode,
    afterChangesStart,
    tools,
    holdAfter,
  );
  const landing = landingOf(node, baseline, phase, exitedFirst);
  const { inProgress, stateLeft } = stateFiles(node.stateDir);
  recover(node, config, baseline, phase, trial % 2 === 1, problems);
  const { leftovers } = stateFiles(node.stateDir);
  return {
    phase,
    trial,
    seed,
    killMode,
    delayMs,
    afterChangesStart,
    ...(holdAfter && { holdAfter: `${holdAfter.tool} #${holdAfter.call}` }),
    killedAtHold,
    landing,
    payloadsStarted,
    payloadsEnded,
    inProgressLeft: inProgress,
    uncommitted: phase === "apply" ? inProgress : stateLeft,
    leftovers,
    problems,
    ms: Math.round(performance.now() - started),
  };
}

/**
 * After the kill. apply: apply again (converged, no duplicates, plan 0), then delete (original).
 * delete: with `deleteFirst`, delete again (original); then apply (converged) and delete (original).
 */
function recover(
  node: Netns,
  config: string,
  baseline: Baseline,
  phase: Phase,
  deleteFirst: boolean,
  problems: string[],
): void {
  if (phase === "delete" && deleteFirst) checkDeleted(node, baseline, problems, "delete after the crash");
  checkConverged(node, config, baseline, problems);
  checkDeleted(node, baseline, problems, "delete after the re-apply");
}

export interface CrashPoint {
  readonly phase: Phase;
  readonly tool: PayloadTool;
  /** The n-th payload call of that tool in the run (1 = the first). */
  readonly call: number;
  /** How many lines of that payload the tool runs (after symroute is dead); "all": the whole payload. */
  readonly lines: number | "all";
  /**
   * A call that is not a payload: the `call`-th call of the tool with this argument (`nft delete`:
   * the iptables front end's clean-up of the mangle table it made), killed before it ran (`lines`
   * 0) or after ("all").
   */
  readonly arg?: string;
}

export interface CrashPointResult {
  readonly point: CrashPoint;
  /** The wrapper reached the point (the run had at least `call` payloads of the tool). */
  readonly fired: boolean;
  readonly landing: Landing;
  readonly inProgressLeft: boolean;
  readonly leftovers: readonly string[];
  readonly problems: readonly string[];
}

export function describePoint(p: CrashPoint): string {
  if (p.arg !== undefined)
    return `${p.phase}: killed ${p.lines === "all" ? "after" : "before"} ${p.tool} ${p.arg} call #${p.call}`;
  return `${p.phase}: killed at ${p.tool} payload #${p.call} with ${p.lines === "all" ? "all" : p.lines} line(s) run`;
}

/** Kills symroute at an exact point of a payload (see fault-tools.ts), then recovers and checks. */
export async function crashPointTrial(
  options: {
    node: Netns;
    config: string;
    baseline: Baseline;
    tools: FaultTools;
    deleteFirst?: boolean;
  },
  point: CrashPoint,
): Promise<CrashPointResult> {
  const { node, config, baseline, tools } = options;
  const problems: string[] = [];
  if (point.phase === "delete") {
    const applied = node.symroute(["apply", "-c", config]);
    if (applied.code !== 0) problems.push(`set-up apply exited ${applied.code}: ${applied.stderr.trim()}`);
  }
  const env = tools.env({
    kind: "crash",
    tool: point.tool,
    call: point.call,
    lines: point.lines,
    ...(point.arg === undefined ? {} : { arg: point.arg }),
  });
  const args = point.phase === "apply" ? ["apply", "-c", config] : ["delete"];
  const killed = node.symroute(args, env);
  await namespaceQuiet(node.name);
  const calls = Number(
    readFileSync(env["SR_FAULT_COUNTER"] as string, { encoding: "utf8", flag: "a+" }).trim() || 0,
  );
  const fired = calls >= point.call;
  if (fired && killed.code === 0) problems.push("the wrapper fired but symroute exited 0");
  const landing = landingOf(node, baseline, point.phase, !fired);
  const { inProgress } = stateFiles(node.stateDir);
  recover(node, config, baseline, point.phase, options.deleteFirst ?? true, problems);
  const { leftovers } = stateFiles(node.stateDir);
  return { point, fired, landing, inProgressLeft: inProgress, leftovers, problems };
}

/** Every interesting point of a run with `payloads` (tool -> its payload line counts, in call order). */
export function crashPoints(
  phase: Phase,
  payloads: Readonly<Partial<Record<PayloadTool, readonly number[]>>>,
): CrashPoint[] {
  const points: CrashPoint[] = [];
  for (const [tool, counts] of Object.entries(payloads) as [PayloadTool, readonly number[]][]) {
    counts.forEach((count, i) => {
      // ip -batch and ipset restore run line by line, keeping what ran: every step may be the last.
      const lines =
        tool === "ip" || tool === "ipset"
          ? [...new Set([0, 1, Math.floor(count / 2), count - 1])].filter((n) => n >= 0 && n < count)
          : [0];
      for (const n of lines) points.push({ phase, tool, call: i + 1, lines: n });
      points.push({ phase, tool, call: i + 1, lines: "all" });
    });
  }
  return points;
}

export function summarise(results: readonly TrialResult[]): string {
  const out: string[] = [];
  for (const phase of ["apply", "delete"] as const) {
    const of = results.filter((r) => r.phase === phase);
    if (of.length === 0) continue;
    const count = (landing: Landing): number => of.filter((r) => r.landing === landing).length;
    const failed = of.filter((r) => r.problems.length > 0);
    out.push(
      `${phase}: ${of.length} trials, ${failed.length} failed, ${of.filter(landedMidChange).length} killed mid-change; ` +
        `kill landed before changes ${count("before-changes")}, ` +
        `mid-way ${count("partial")}, after all changes ${count("complete")}, no signal sent (exited first) ${count("exited-first")}; ` +
        `state file left "inProgress" ${of.filter((r) => r.inProgressLeft).length}; ` +
        `kill modes process ${of.filter((r) => r.killMode === "process").length} / group ${of.filter((r) => r.killMode === "group").length}`,
    );
    for (const r of failed)
      out.push(
        `  FAILED ${phase} trial ${r.trial} seed ${r.seed} (${r.killMode}, ${r.delayMs} ms, ${r.landing}): ${r.problems.join("; ")}`,
      );
  }
  return out.join("\n");
}

/** The share of random kills that must land mid-change (landedMidChange), per phase. */
export const MIN_MID_CHANGE_SHARE = 0.6;

/**
 * Why a crash run proves too little, beyond failed recoveries: a named crash point never reached,
 * or too few kills of a phase landed mid-change (at least MIN_MID_CHANGE_SHARE of its trials).
 */
export function weakRun(results: readonly TrialResult[], points: readonly CrashPointResult[]): string[] {
  const problems: string[] = [];
  for (const p of points) if (!p.fired) problems.push(`crash point never reached: ${describePoint(p.point)}`);
  for (const phase of ["apply", "delete"] as const) {
    const of = results.filter((r) => r.phase === phase);
    if (of.length === 0) continue;
    const mid = of.filter(landedMidChange).length;
    const needed = Math.ceil(MIN_MID_CHANGE_SHARE * of.length);
    if (mid < needed)
      problems.push(
        `${phase}: only ${mid} of ${of.length} kills landed mid-change (at least ${needed} needed); ` +
          `before changes ${of.filter((r) => r.landing === "before-changes").length}, ` +
          `after the commit ${of.filter((r) => r.landing === "complete" && !r.uncommitted).length}, ` +
          `no signal sent ${of.filter((r) => r.landing === "exited-first").length}`,
      );
  }
  return problems;
}
