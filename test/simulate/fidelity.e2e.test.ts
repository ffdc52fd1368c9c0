// Kernel differential test: random rule and route sets installed in a fresh namespace, random
// packets asked of `ip route get` and of the simulator; every modelled case must agree.
// SYMROUTE_FIDELITY_RUNS sets the number of packets (default 300), SYMROUTE_FIDELITY_SEED the seed.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Family } from "../../src/model/address.ts";
import type { Packet } from "../../src/simulate/types.ts";
import { compileRoutingState } from "../../src/simulate/compile.ts";
import { formatTrace } from "../../src/simulate/format.ts";
import { tracePacket } from "../../src/simulate/trace.ts";
import { disagreement, KernelLab, namespacesAvailable } from "./support/kernel-lab.ts";
import { packetArb, routeGetArgs, stateArb } from "./support/random-state.ts";

const RUNS = Number(process.env["SYMROUTE_FIDELITY_RUNS"] ?? "300");
const SEED = Number(process.env["SYMROUTE_FIDELITY_SEED"] ?? "20261124");
const PACKETS_PER_STATE = RUNS >= 2000 ? 50 : 25;
const MAX_REPORTED = 5;
/**
 * The least share of generated cases the simulator must model (the rest it reports "unsupported"):
 * without a floor, a simulator that answered "unsupported" to everything would pass.
 */
const MIN_COMPARED = 0.95;

interface Failure {
  readonly packet: Packet;
  readonly lines: readonly string[];
  readonly sysctls: Readonly<Record<string, string>>;
  readonly family: Family;
  readonly seed: number;
}

/** Install `lines` afresh and ask again: the disagreement text, or undefined when they agree now. */
async function replay(
  f: Failure,
  lines: readonly string[],
): Promise<{ diff: string; explanation: string[] } | undefined> {
  const lab = await KernelLab.create("sr-simshr");
  try {
    await lab.writeSysctls(f.sysctls);
    const installed = await lab.batchAccepted(f.family, lines);
    if (installed.length !== lines.length) return undefined;
    const index = compileRoutingState(await lab.readState());
    const [answer] = await lab.routeGet(f.family, [f.packet]);
    const trace = tracePacket(index, f.packet);
    if (answer === undefined || trace.result === "unsupported") return undefined;
    const diff = disagreement(trace, answer);
    return diff === undefined
      ? undefined
      : { diff, explanation: formatTrace(tracePacket(index, f.packet, { explain: true })) };
  } finally {
    await lab.destroy();
  }
}

async function minimalReproduction(f: Failure): Promise<string> {
  let lines = [...f.lines];
  let last = await replay(f, lines);
  if (last === undefined)
    return `--- disagreement (state seed ${f.seed}) did not reproduce on a second run: ${routeGetArgs(f.packet).join(" ")}`;
  for (let i = lines.length - 1; i >= 0; i--) {
    const fewer = lines.filter((_, j) => j !== i);
    const again = await replay(f, fewer);
    if (again !== undefined) {
      lines = fewer;
      last = again;
    }
  }
  const ip = `ip ${f.family === 6 ? "-6 " : ""}`;
  return [
    `--- disagreement (state seed ${f.seed}, IPv${f.family}): ${last.diff}`,
    "minimal reproduction, in a fresh namespace with the topology of test/simulate/support/random-state.ts:",
    ...Object.entries(f.sysctls).map(([k, v]) => `  sysctl -w ${k.replaceAll("/", ".")}=${v}`),
    ...lines.map((l) => `  ${ip}${l}`),
    `  ${ip}${routeGetArgs(f.packet).join(" ")}`,
    "simulator's explanation:",
    ...last.explanation.map((l) => `  ${l}`),
  ].join("\n");
}

test("the simulator agrees with the kernel's `ip route get`", { timeout: 30 * 60_000 }, async (t) => {
  const missing = await namespacesAvailable();
  if (missing !== undefined) {
    t.skip(missing);
    return;
  }
  const states = Math.max(2, Math.ceil(RUNS / PACKETS_PER_STATE));
  let modelled = 0;
  let agreed = 0;
  let unsupported = 0;
  const unsupportedReasons = new Map<string, number>();
  const verdicts = new Map<string, number>();
  const reproductions: string[] = [];
  let disagreements = 0;
  const failing: Failure[] = [];
  for (let s = 0; s < states; s++) {
    const family: Family = s % 2 === 0 ? 4 : 6;
    const [generated] = fc.sample(stateArb(family), { seed: SEED + s, numRuns: 1 });
    const packets = fc.sample(packetArb(family), { seed: SEED * 7 + s, numRuns: PACKETS_PER_STATE });
    if (generated === undefined) continue;
    const lab = await KernelLab.create("sr-sim");
    try {
      await lab.writeSysctls(generated.sysctls);
      const installed = await lab.batchAccepted(family, generated.lines);
      const state = await lab.readState();
      const index = compileRoutingState(state);
      const answers = await lab.routeGet(family, packets);
      packets.forEach((packet, i) => {
        const answer = answers[i];
        if (answer === undefined) return;
        const trace = tracePacket(index, packet);
        if (trace.result === "unsupported") {
          unsupported++;
          const key = (trace.reason ?? "").replace(/[0-9a-f.:]{7,}/g, "ADDR").replace(/\b\d+\b/g, "N");
          unsupportedReasons.set(key, (unsupportedReasons.get(key) ?? 0) + 1);
          return;
        }
        modelled++;
        const kind = `${packet.iif === undefined ? "output" : "input"} ${trace.result}${trace.rpFilter === undefined ? "" : ` rp_filter=${trace.rpFilter.mode}`}`;
        verdicts.set(kind, (verdicts.get(kind) ?? 0) + 1);
        const diff = disagreement(trace, answer);
        if (diff === undefined) {
          agreed++;
          return;
        }
        disagreements++;
        if (failing.length < MAX_REPORTED)
          failing.push({ packet, lines: installed, sysctls: generated.sysctls, family, seed: SEED + s });
      });
    } finally {
      await lab.destroy();
    }
  }
  // Each reported disagreement is shrunk to the fewest rules and routes that still show it.
  for (const f of failing) reproductions.push(await minimalReproduction(f));
  const rate = modelled === 0 ? 0 : (100 * agreed) / modelled;
  const compared = modelled / Math.max(1, modelled + unsupported);
  t.diagnostic(
    `fidelity: ${agreed}/${modelled} modelled cases agree (${rate.toFixed(2)}%), ${unsupported} reported unsupported ` +
      `(${(100 * compared).toFixed(2)}% compared), ${states} states, seed ${SEED}`,
  );
  t.diagnostic(
    `verdicts: ${[...verdicts]
      .sort()
      .map(([k, n]) => `${k}: ${n}`)
      .join(", ")}`,
  );
  for (const [reason, count] of [...unsupportedReasons].sort((a, b) => b[1] - a[1])) {
    t.diagnostic(`unsupported x${count}: ${reason}`);
  }
  for (const r of reproductions) t.diagnostic(r);
  assert.equal(
    disagreements,
    0,
    `${disagreements} disagreements between the simulator and the kernel:\n${reproductions.join("\n")}`,
  );
  assert.ok(
    compared >= MIN_COMPARED,
    `only ${modelled} of ${modelled + unsupported} cases compared (${(100 * compared).toFixed(2)}%, below ${100 * MIN_COMPARED}%): ` +
      `the simulator reported the rest unsupported`,
  );
});
