// `make crash` and `make soak` interrupted (Ctrl-C, or a kill): the run leaves no namespace of its
// own behind and exits 130 or 143, as `lab` does. Before, a killed run kept its node namespaces
// (each with a converged node of 200 networks) until someone deleted them by hand.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { REPO, e2eUnavailable, run } from "../support/netns.ts";

const skip = e2eUnavailable();

/** The namespaces whose names carry `pid` (createNamespaceNode names them PREFIX-PID-N, PREFIXp-PID-N). */
function namespacesOf(pid: number): string[] {
  return run(["ip", "netns", "list"])
    .stdout.split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n.includes(`-${pid}-`));
}

const RUNS = [
  { script: "scripts/reliability/crash.ts", args: ["1", "--networks", "5", "--firewall", "nftables"] },
  { script: "scripts/reliability/agent-soak.ts", args: ["600", "--networks", "11"] },
] as const;

for (const { script, args } of RUNS)
  for (const signal of ["SIGTERM", "SIGINT"] as const)
    test(`${script} removes its namespaces when it gets ${signal}`, { skip }, async () => {
      const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
        cwd: REPO,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      child.stdout.on("data", (d: Buffer) => (output += d.toString()));
      child.stderr.on("data", (d: Buffer) => (output += d.toString()));
      const exited = once(child, "exit");
      const pid = child.pid;
      assert.ok(pid !== undefined);
      // Wait for its first namespace (a turn of the loop between looks: no sleep).
      let seen: string[] = [];
      for (let i = 0; i < 100_000 && seen.length === 0 && child.exitCode === null; i++) {
        seen = namespacesOf(pid);
        if (seen.length === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      assert.ok(seen.length > 0, `the run made no namespace before it ended:\n${output}`);
      child.kill(signal);
      const [code] = (await exited) as [number | null, NodeJS.Signals | null];
      assert.equal(code, signal === "SIGINT" ? 130 : 143, output);
      assert.deepEqual(namespacesOf(pid), [], `left behind after ${signal}`);
    });
