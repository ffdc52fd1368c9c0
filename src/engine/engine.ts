// The engine: plan, apply and delete over the ports (ports.ts), never over adapters; src/cli and
// src/agent wire the real kernel in. An apply is lock -> observe -> plan -> record state -> apply
// -> verify -> commit, or roll back (converge.ts; each step in steps/).

import type { Config } from "../config/schema.ts";
import { converge } from "./converge.ts";
import { observe } from "./steps/observe.ts";
import { finishPlan, planRouting, withObservedGuards } from "./steps/plan.ts";
import type { Engine, EngineDeps, PlanReport } from "./types.ts";

export type { ApplyOptions, ApplyReport, Engine, EngineDeps, PlanReport, StateInfo } from "./types.ts";
export { describeChange, describeChanges } from "./describe.ts";

export function createEngine(deps: EngineDeps): Engine {
  const { kernel, store } = deps;
  return {
    /** observe -> plan, without the lock: it changes nothing. */
    async plan(config: Config): Promise<PlanReport> {
      const saved = await store.read();
      const observed = await observe(kernel, config, saved, false);
      const rp = planRouting(observed, config, saved, false, store.location);
      const observedFirewall = await rp.firewallRead;
      return finishPlan(withObservedGuards(rp, observedFirewall), observedFirewall).report;
    },
    apply: (config, options = {}) => converge(deps, config, options, false),
    remove: (config, options = {}) => converge(deps, config, options, true),
  };
}
