// The agent's Prometheus metrics, on a registry of its own (never prom-client's global one, so that
// tests and embedders get a clean set every time).

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export const METRIC_NAMES = {
  reconciles: "symroute_reconciles_total",
  reconcileDuration: "symroute_reconcile_duration_seconds",
  reconcileErrors: "symroute_reconcile_errors_total",
  driftRepairs: "symroute_drift_repairs_total",
  changesApplied: "symroute_changes_applied_total",
  ownedObjects: "symroute_owned_objects",
  conflicts: "symroute_conflicts",
  configErrors: "symroute_config_errors_total",
  configLoaded: "symroute_config_loaded",
  configStale: "symroute_config_stale",
  lastSuccess: "symroute_last_success_timestamp_seconds",
  sourceErrors: "symroute_source_errors_total",
  networks: "symroute_networks",
  converged: "symroute_converged",
  eventsReceived: "symroute_events_received_total",
  eventsCoalesced: "symroute_events_coalesced_total",
  eventsIgnored: "symroute_events_ignored_total",
  nodeReads: "symroute_node_reads_total",
  nftTransactions: "symroute_nft_transactions_total",
  nftChainsVerified: "symroute_nft_chains_verified_total",
  planWarnings: "symroute_plan_warnings",
  planWarningsByKind: "symroute_plan_warnings_by_kind",
  stateBaselineUnknown: "symroute_state_baseline_unknown",
} as const;

export interface AgentMetrics {
  readonly registry: Registry;
  readonly reconciles: Counter<"result">;
  readonly reconcileDuration: Histogram;
  readonly reconcileErrors: Counter<"kind">;
  readonly driftRepairs: Counter;
  readonly changesApplied: Counter;
  readonly ownedObjects: Gauge;
  readonly conflicts: Gauge;
  readonly configErrors: Counter<"source">;
  readonly configLoaded: Gauge;
  readonly configStale: Gauge;
  readonly lastSuccess: Gauge;
  readonly sourceErrors: Counter<"source">;
  readonly networks: Gauge;
  readonly converged: Gauge;
  readonly eventsReceived: Counter<"source">;
  readonly eventsCoalesced: Counter<"source">;
  readonly eventsIgnored: Counter<"source">;
  readonly nodeReads: Counter<"from">;
  readonly nftTransactions: Counter<"kind">;
  readonly nftChainsVerified: Counter<"from">;
  readonly planWarnings: Gauge;
  readonly planWarningsByKind: Gauge<"kind">;
  readonly stateBaselineUnknown: Gauge;
}

export function createMetrics(options: { readonly processMetrics?: boolean } = {}): AgentMetrics {
  const registry = new Registry();
  const registers = [registry];
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry });
  return {
    registry,
    reconciles: new Counter({
      name: METRIC_NAMES.reconciles,
      help: "Reconciles run, by result (success, error).",
      labelNames: ["result"] as const,
      registers,
    }),
    reconcileDuration: new Histogram({
      name: METRIC_NAMES.reconcileDuration,
      help: "Time one reconcile took: read the node, plan, apply and verify.",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    reconcileErrors: new Counter({
      name: METRIC_NAMES.reconcileErrors,
      help: "Failed reconciles, by error kind.",
      labelNames: ["kind"] as const,
      registers,
    }),
    driftRepairs: new Counter({
      name: METRIC_NAMES.driftRepairs,
      help: "Reconciles that changed the node although the configuration had not changed (drift repaired).",
      registers,
    }),
    changesApplied: new Counter({
      name: METRIC_NAMES.changesApplied,
      help: "Individual changes (rules, routes, sysctls, firewall objects) applied.",
      registers,
    }),
    ownedObjects: new Gauge({
      name: METRIC_NAMES.ownedObjects,
      help: "Objects symroute owns on this node after the last reconcile.",
      registers,
    }),
    conflicts: new Gauge({
      name: METRIC_NAMES.conflicts,
      help: "Foreign objects in the way of the desired state (reported, never touched).",
      registers,
    }),
    configErrors: new Counter({
      name: METRIC_NAMES.configErrors,
      help: "Configurations refused (the last good one stays in force), by source (file, kubernetes).",
      labelNames: ["source"] as const,
      registers,
    }),
    configLoaded: new Gauge({
      name: METRIC_NAMES.configLoaded,
      help: "1 when a valid configuration is in force.",
      registers,
    }),
    configStale: new Gauge({
      name: METRIC_NAMES.configStale,
      help: "1 when the config file's last edit was refused and an older configuration stays in force.",
      registers,
    }),
    lastSuccess: new Gauge({
      name: METRIC_NAMES.lastSuccess,
      help: "Unix time of the last successful reconcile.",
      registers,
    }),
    sourceErrors: new Counter({
      name: METRIC_NAMES.sourceErrors,
      help: "Errors of the configuration sources (Kubernetes API unreachable, kernel monitor exits), by source.",
      labelNames: ["source"] as const,
      registers,
    }),
    networks: new Gauge({
      name: METRIC_NAMES.networks,
      help: "Networks in the configuration in force.",
      registers,
    }),
    converged: new Gauge({
      name: METRIC_NAMES.converged,
      help: "1 when the last reconcile converged the node (what /readyz says), else 0.",
      registers,
    }),
    eventsReceived: new Counter({
      name: METRIC_NAMES.eventsReceived,
      help: "Events that asked for a reconcile (kernel, config-file, kubernetes), by source.",
      labelNames: ["source"] as const,
      registers,
    }),
    eventsCoalesced: new Counter({
      name: METRIC_NAMES.eventsCoalesced,
      help: "Events merged into a reconcile already scheduled or running (no reconcile of their own), by source.",
      labelNames: ["source"] as const,
      registers,
    }),
    eventsIgnored: new Counter({
      name: METRIC_NAMES.eventsIgnored,
      help: "Kernel events about links and routes the configuration does not name (a pod's veth): no reconcile.",
      labelNames: ["source"] as const,
      registers,
    }),
    nodeReads: new Counter({
      name: METRIC_NAMES.nodeReads,
      help: "Reads of the node's routing or firewall a reconcile asked for, by where they came from (cache: kept since an earlier read, nothing changed since; kernel; chains: only the nft chains the agent's transaction changed; tables: only the route tables and rule priorities the agent's routing write and the monitor's lines since named, the others kept).",
      labelNames: ["from"] as const,
      registers,
    }),
    nftTransactions: new Counter({
      name: METRIC_NAMES.nftTransactions,
      help: "The agent's nft transactions, by kind (partial: only the chains that changed; full: the tables replaced whole; partial-refused: nft refused a partial one, the whole-table one ran after it).",
      labelNames: ["kind"] as const,
      registers,
    }),
    nftChainsVerified: new Counter({
      name: METRIC_NAMES.nftChainsVerified,
      help: "Chains the verification after an nft transaction of the agent's took, by where from (monitor: as nft monitor printed the transaction; listed: nft -t list chain).",
      labelNames: ["from"] as const,
      registers,
    }),
    planWarnings: new Gauge({
      name: METRIC_NAMES.planWarnings,
      help: "Warnings of the last successful reconcile's plan (each is logged at warn when it appears, not on every reconcile while it lasts; again if it goes and comes back).",
      registers,
    }),
    planWarningsByKind: new Gauge({
      name: METRIC_NAMES.planWarningsByKind,
      help: "The same warnings by kind (warningDetails[].kind; every kind is present, 0 when none), so that alerts need not match message text.",
      labelNames: ["kind"] as const,
      registers,
    }),
    stateBaselineUnknown: new Gauge({
      name: METRIC_NAMES.stateBaselineUnknown,
      help: "1 when the state file does not know the node from before symroute (written again after it was lost): delete and --cleanup-on-exit refuse until it is put back or delete --force runs.",
      registers,
    }),
  };
}
