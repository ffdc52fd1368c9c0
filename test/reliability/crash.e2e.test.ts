// Crash consistency (issue 7, item 1), the short version run by `make test`: symroute killed with
// SIGKILL during `apply` and `delete` of many networks (200 with `firewall: nftables`, 50 with
// `firewall: iptables`), at exact points of its payloads (a wrapper of the real tool kills it) and
// at random moments (2 per phase, SYMROUTE_CRASH_TRIALS: every run must hit the exact points; the
// spread of random moments is `make crash`'s 100 per phase, too long for the suite). One random
// kill in four is timed from the start of the run with nothing held; the others from this run's
// first payload, with the wrapper of the payload the kill is aimed at holding the run once that
// payload is done until the kill was sent, so that on a loaded machine a late timer lands right
// after that payload, never after the run committed and exited (crashTrial). After every kill the
// next apply converges to exactly the state of an uninterrupted apply, with no duplicates and
// `plan` in sync, and delete restores the original node byte for byte. A kill that did not land
// mid-change proves nothing about recovery: every crash point must be reached, and at least 60% of
// the random kills of each phase must land mid-change (weakRun; more kills are drawn until it
// holds). Once per firewall front end, on a node with kube-proxy's own iptables rules, chains and
// ipsets, which every check compares too. The full run is scripts/reliability/crash.ts.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  crashPointTrial,
  crashTrial,
  describePoint,
  landedMidChange,
  measureBaseline,
  weakRun,
  type CrashPoint,
  type CrashPointResult,
  type TrialResult,
} from "./support/crash.ts";
import { createFaultTools } from "./support/fault-tools.ts";
import { createNamespaceNode, e2eUnavailable, writeConfigFile } from "../support/netns.ts";
import { loadForeignKubeProxy, manyNetworksConfig } from "./support/node.ts";

const skip = e2eUnavailable();
type Firewall = "nftables" | "iptables";
/**
 * Networks per front end: the iptables front end's runs cost more (four tools, each recovery's
 * dump lists every set), and its crash points are the same with fewer networks.
 */
const NETWORKS: Readonly<Record<Firewall, number>> = { nftables: 200, iptables: 50 };
/** Random-moment trials per phase: one from the run's start, one from its changes' start; `make crash` runs 100. */
const RANDOM_TRIALS = Number(process.env["SYMROUTE_CRASH_TRIALS"] ?? 2);

/**
 * Crash points per front end. nftables: ip batches (IPv4 first, then IPv6), the nft transaction
 * after them. iptables: the sets' `ipset restore` (it keeps the lines that ran), one restore per
 * family, the delete's `ipset restore` that destroys the sets, and its commit's `nft delete`s of
 * what it made in IPv6 (kube-proxy has no mangle table there): the built-in chains OUTPUT and
 * PREROUTING, then the table (kube-proxy's IPv4 one is not its to drop); killed before the first
 * and before the last.
 */
const POINTS: Readonly<Record<Firewall, (lines: { v4: number; ipsetFill: number }) => CrashPoint[]>> = {
  nftables: ({ v4 }) => [
    { phase: "apply", tool: "ip", call: 1, lines: Math.floor(v4 / 2) },
    { phase: "apply", tool: "ip", call: 2, lines: 0 },
    { phase: "apply", tool: "nft", call: 1, lines: "all" },
    { phase: "delete", tool: "ip", call: 1, lines: 7 },
    { phase: "delete", tool: "nft", call: 1, lines: 0 },
  ],
  iptables: ({ ipsetFill }) => [
    { phase: "apply", tool: "ipset", call: 1, lines: Math.floor(ipsetFill / 2) },
    { phase: "apply", tool: "iptables-restore", call: 1, lines: "all" },
    { phase: "apply", tool: "ip6tables-restore", call: 1, lines: 0 },
    { phase: "delete", tool: "ip6tables-restore", call: 1, lines: "all" },
    { phase: "delete", tool: "ipset", call: 1, lines: 1 },
    { phase: "delete", tool: "nft", call: 1, lines: 0, arg: "delete" },
    { phase: "delete", tool: "nft", call: 3, lines: 0, arg: "delete" },
  ],
};

for (const firewall of ["nftables", "iptables"] as const)
  test(
    `SIGKILL during apply and delete of ${NETWORKS[firewall]} networks, firewall: ${firewall}: the next runs converge and restore`,
    { skip, timeout: 600_000 },
    async (t) => {
      const node = createNamespaceNode({ prefix: "sr-crash", dualStack: true });
      const tools = createFaultTools();
      t.after(() => {
        node.destroy();
        tools.remove();
      });
      loadForeignKubeProxy(node);
      const config = writeConfigFile(
        node.stateDir,
        "networks.yaml",
        manyNetworksConfig(NETWORKS[firewall], firewall),
      );
      const plan = node.symroute(["plan", "-c", config, "-o", "json", "--payloads"]);
      assert.equal(plan.code, 2, plan.stderr);
      const payloads = (
        JSON.parse(plan.stdout) as {
          payloads: { ip: { ipv4: string[]; ipv6: string[] }; firewall: { tool: string; script: string }[] };
        }
      ).payloads;
      const v4 = payloads.ip.ipv4.length;
      const n = NETWORKS[firewall];
      assert.ok(v4 > 2 * n && payloads.ip.ipv6.length > n, `payload sizes ${v4}/${payloads.ip.ipv6.length}`);
      const ipsetFill = payloads.firewall.find((p) => p.tool === "ipset")?.script.split("\n").length ?? 0;
      const baseline = await measureBaseline(node, config, tools);

      const pointResults: CrashPointResult[] = [];
      for (const point of POINTS[firewall]({ v4, ipsetFill })) {
        const result = await crashPointTrial({ node, config, baseline, tools }, point);
        pointResults.push(result);
        t.diagnostic(
          `${describePoint(point)} -> ${result.landing}${result.inProgressLeft ? " (inProgress)" : ""}`,
        );
        assert.ok(result.fired, `${describePoint(point)}: the wrapper never reached that point`);
        assert.deepEqual(result.problems, [], describePoint(point));
      }

      const seed = Number(process.env["SYMROUTE_CRASH_SEED"] ?? Date.now() % 1_000_000);
      const results: TrialResult[] = [];
      const runTrial = async (trial: number, phase: "apply" | "delete"): Promise<void> => {
        const result = await crashTrial({
          node,
          config,
          baseline,
          tools,
          phase,
          trial,
          windows: RANDOM_TRIALS,
          seed: seed * 1000 + trial * 2 + (phase === "delete" ? 1 : 0),
        });
        results.push(result);
        const what = `${firewall} ${phase} trial ${trial} killed at ${result.afterChangesStart ? "changes" : "start"}+${result.delayMs} ms${result.killedAtHold ? ` (found held after ${result.holdAfter})` : ""} (${result.killMode}, replay: SYMROUTE_CRASH_SEED=${seed})`;
        t.diagnostic(
          `${what} -> ${result.landing}${result.uncommitted ? " (uncommitted)" : ""}${landedMidChange(result) ? ", mid-change" : ""}`,
        );
        assert.deepEqual(result.problems, [], what);
      };
      for (let trial = 0; trial < RANDOM_TRIALS; trial++) {
        for (const phase of ["apply", "delete"] as const) await runTrial(trial, phase);
      }
      // A kill timed from the changes' start can still land before the first line ran (the tool just
      // started): such a trial proves nothing, so draw more kills after the changes start (never from
      // the start), up to as many again, until the phase's share of mid-change kills holds. Every
      // trial still counts.
      for (const phase of ["apply", "delete"] as const) {
        const weak = (): boolean =>
          weakRun(
            results.filter((r) => r.phase === phase),
            [],
          ).length > 0;
        for (let trial = RANDOM_TRIALS; weak() && trial < 2 * RANDOM_TRIALS + 2; trial++) {
          if (trial % 4 !== 0) await runTrial(trial, phase);
        }
      }
      assert.deepEqual(weakRun(results, pointResults), [], "the kills must land where they prove something");
    },
  );
