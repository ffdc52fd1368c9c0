// Result files of the reliability runs (docs/results/*.json): what ran, on which commit and machine,
// and what it found. scripts/reliability/report.ts turns them into docs/reliability.md.

import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join, resolve } from "node:path";

export const REPO = resolve(import.meta.dirname, "../..");
export const RESULTS = join(REPO, "docs/results");

export interface Provenance {
  /** The commit the run's code came from, and whether the tree differed from it. */
  readonly commit: string;
  readonly dirty: boolean;
  readonly started: string;
  readonly kernel: string;
  readonly node: string;
  readonly cpus: string;
  readonly loadAtStart: string;
}

function out(argv: readonly string[]): string {
  const [file, ...args] = argv;
  const r = spawnSync(file as string, args, { cwd: REPO, encoding: "utf8" });
  if (r.error !== undefined || r.status !== 0)
    throw new Error(`${argv.join(" ")} failed: ${r.error?.message ?? r.stderr}`);
  return r.stdout.trim();
}

export function runProvenance(): Provenance {
  // Only the code counts as "dirty": result files and generated docs change during runs.
  const dirty =
    out(["git", "status", "--porcelain", "--", "src", "bin", "test", "scripts", "package.json"]) !== "";
  return {
    commit: out(["git", "rev-parse", "HEAD"]),
    dirty,
    started: new Date().toISOString(),
    kernel: out(["uname", "-r"]),
    node: process.version,
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? "?"}`,
    loadAtStart: out(["cut", "-d", " ", "-f", "1-3", "/proc/loadavg"]),
  };
}

export function writeResult(file: string, result: object): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(result, null, 1)}\n`);
}
