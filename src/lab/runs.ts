// The lab runs on a machine: lab namespaces grouped by the prefix of the run that made them
// (srlab-<pid>-<n>-, see newPrefix), and which of them a plain `lab down` may remove. Several labs
// can be up at once (two `lab up`s, a test run beside a demo): without --prefix or --all, `lab down`
// removes a run only when it is the one run no live process owns, so it never takes another's lab.

import { LAB_PREFIX } from "./topology.ts";

export interface LabRun {
  /** What `lab down --prefix` takes to remove this run alone. */
  readonly prefix: string;
  /** The process that built the run (from the prefix); undefined for a name not made by newPrefix. */
  readonly pid: number | undefined;
  readonly namespaces: readonly string[];
}

const RUN_PREFIX = new RegExp(`^${LAB_PREFIX}([0-9]+)-[0-9]+-`);

/** Groups lab namespace names by run, in the order of each run's first name. */
export function labRunsOf(names: readonly string[]): LabRun[] {
  const runs = new Map<string, { pid: number | undefined; namespaces: string[] }>();
  for (const name of names) {
    const match = RUN_PREFIX.exec(name);
    // A name newPrefix did not make is a run of its own: --prefix with the whole name removes it.
    const prefix = match === null ? name : match[0];
    const run = runs.get(prefix) ?? { pid: match === null ? undefined : Number(match[1]), namespaces: [] };
    run.namespaces.push(name);
    runs.set(prefix, run);
  }
  return [...runs].map(([prefix, run]) => ({ prefix, ...run }));
}

/** What a plain `lab down` does with the runs it found. */
export type DefaultDown =
  /** The one run no live process owns (a `lab up` or a crashed run's leftovers): remove it. */
  | { readonly kind: "remove"; readonly run: LabRun; readonly inUse: readonly LabRun[] }
  /** Nothing to remove: no lab, or only runs whose process is still running (a demo, a test). */
  | { readonly kind: "nothing"; readonly inUse: readonly LabRun[] }
  /** Several runs no live process owns: which one is meant is for the operator to say. */
  | { readonly kind: "several"; readonly idle: readonly LabRun[]; readonly inUse: readonly LabRun[] };

export function defaultDown(runs: readonly LabRun[], isRunning: (pid: number) => boolean): DefaultDown {
  const inUse = runs.filter((r) => r.pid !== undefined && isRunning(r.pid));
  const idle = runs.filter((r) => !inUse.includes(r));
  if (idle.length === 0) return { kind: "nothing", inUse };
  if (idle.length === 1) return { kind: "remove", run: idle[0] as LabRun, inUse };
  return { kind: "several", idle, inUse };
}
