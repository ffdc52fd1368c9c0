// The cluster as a configuration source: informers (list + watch, relist on 410 Gone) on the
// SymrouteNetworks, MetalLB's IPAddressPools and L2Advertisements, and this node; per-node status
// written back through the status subresource. The informer caches outlive API outages, so the last
// good view of the cluster stays in force while the API server is unreachable; a failed informer is
// restarted with backoff (client-node 1.4 informers stop after an error).

import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  ListWatch,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type KubernetesListObject,
  type KubernetesObject,
} from "./client-node.ts";
import { backoffDelay } from "../backoff.ts";
import type { Clock, TimerHandle } from "../clock.ts";
import { summarizeNodes } from "./conditions.ts";
import { describeMissingKubeConfig, type KubeConfigDiscovery, type KubeConfigFound } from "./kubeconfig.ts";
import {
  L2ADVERTISEMENT_PLURAL,
  METALLB_GROUP,
  METALLB_VERSION,
  POOL_PLURAL,
  SYMROUTE_GROUP,
  SYMROUTE_PLURAL,
  SYMROUTE_VERSION,
  type IpAddressPool,
  type L2Advertisement,
  type NodeInfo,
  type NodeStatus,
  type SymrouteNetwork,
} from "./resources.ts";

export interface ClusterSnapshot {
  readonly networks: readonly SymrouteNetwork[];
  readonly pools: readonly IpAddressPool[];
  readonly l2Advertisements: readonly L2Advertisement[];
  readonly node: NodeInfo;
}

interface KubernetesSourceOptions {
  readonly kubeConfig: KubeConfig;
  /** Where the configuration came from (e.g. "in-cluster service account"), for error messages. */
  readonly from?: string;
  readonly nodeName: string;
  readonly metallbNamespace: string;
  readonly clock: Clock;
  /** Something in the cluster view changed (or an informer finished its first list). */
  readonly onChange: (what: string) => void;
  /** Called once per failed round (all informers together), with the delay before the next one. */
  readonly onError: (what: string, error: unknown, retryInMs?: number) => void;
}

/** Retries of the informers after API errors: one shared round for all of them. */
export const API_BACKOFF = { initialMs: 500, maxMs: 30_000 } as const;

export interface KubernetesSource {
  start(): void;
  stop(): Promise<void>;
  /** undefined until every informer has listed once; afterwards the latest (or last known) view. */
  snapshot(): ClusterSnapshot | undefined;
  /** Why snapshot() is undefined, in words for /readyz. */
  waitingFor(): string;
  /** Consecutive failed rounds, and the informers (or "kubeconfig") waiting for the next one. */
  retryState(): { readonly failures: number; readonly waiting: readonly string[] };
  /** Merge-patches `status.nodes.<this node>` of one SymrouteNetwork; `undefined` removes the entry. */
  writeStatus(network: string, status: NodeStatus | undefined): Promise<void>;
}

type AnyObject = KubernetesObject & Record<string, unknown>;

interface ClusterList {
  readonly path: string;
  readonly list: () => Promise<KubernetesListObject<AnyObject>>;
  readonly fieldSelector?: string;
}

/**
 * What a node's view of the cluster is read from: the SymrouteNetworks, MetalLB's pools and
 * advertisements in its namespace, and this node. One definition for the agent's informers and the
 * one-shot read of `plan --kubernetes` (readClusterSnapshot).
 */
function clusterLists(
  kubeConfig: KubeConfig,
  nodeName: string,
  metallbNamespace: string,
): {
  readonly networks: ClusterList;
  readonly pools: ClusterList;
  readonly l2Advertisements: ClusterList;
  readonly node: ClusterList;
} {
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const metallb = (plural: string): ClusterList => ({
    path: `/apis/${METALLB_GROUP}/${METALLB_VERSION}/namespaces/${metallbNamespace}/${plural}`,
    list: () =>
      custom.listNamespacedCustomObject({
        group: METALLB_GROUP,
        version: METALLB_VERSION,
        namespace: metallbNamespace,
        plural,
      }),
  });
  const nodeSelector = `metadata.name=${nodeName}`;
  return {
    networks: {
      path: `/apis/${SYMROUTE_GROUP}/${SYMROUTE_VERSION}/${SYMROUTE_PLURAL}`,
      list: () =>
        custom.listClusterCustomObject({
          group: SYMROUTE_GROUP,
          version: SYMROUTE_VERSION,
          plural: SYMROUTE_PLURAL,
        }),
    },
    pools: metallb(POOL_PLURAL),
    l2Advertisements: metallb(L2ADVERTISEMENT_PLURAL),
    node: {
      path: "/api/v1/nodes",
      list: async () =>
        (await core.listNode({ fieldSelector: nodeSelector })) as unknown as KubernetesListObject<AnyObject>,
      fieldSelector: nodeSelector,
    },
  };
}

/**
 * The cluster as this node's agent sees it, read once (one list of each, no watch): for the
 * one-shot commands (`plan --kubernetes`, `doctor --kubernetes`). undefined when the node is not in
 * the cluster; an API error is thrown as the client reports it.
 */
export async function readClusterSnapshot(options: {
  readonly kubeConfig: KubeConfig;
  readonly nodeName: string;
  readonly metallbNamespace: string;
}): Promise<ClusterSnapshot | undefined> {
  const lists = clusterLists(options.kubeConfig, options.nodeName, options.metallbNamespace);
  const [networks, pools, l2Advertisements, nodes] = await Promise.all([
    lists.networks.list(),
    lists.pools.list(),
    lists.l2Advertisements.list(),
    lists.node.list(),
  ]);
  const self = nodes.items.find((n) => n.metadata?.name === options.nodeName);
  if (self === undefined) return undefined;
  return {
    networks: networks.items as unknown as SymrouteNetwork[],
    pools: pools.items as unknown as IpAddressPool[],
    l2Advertisements: l2Advertisements.items as unknown as L2Advertisement[],
    node: { name: options.nodeName, labels: self.metadata?.labels ?? {} },
  };
}

interface Feed {
  readonly name: string;
  readonly informer: ListWatch<AnyObject>;
  synced: boolean;
}

export function createKubernetesSource(options: KubernetesSourceOptions): KubernetesSource {
  const { kubeConfig, nodeName, metallbNamespace, clock } = options;
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const watch = new Watch(kubeConfig);
  let stopped = true;
  const server = kubeConfig.getCurrentCluster()?.server ?? "(no current cluster)";
  const where = options.from === undefined ? server : `${server} (from ${options.from})`;
  // When the API is down every informer fails at about the same moment: they share one backoff and
  // one log line per round, instead of one line per informer per retry.
  let failures = 0;
  let retry: TimerHandle | undefined;
  const failed = new Set<Feed>();
  const onFeedError = (entry: Feed, error: unknown): void => {
    failed.add(entry);
    if (retry !== undefined) return;
    failures++;
    const delay = backoffDelay(failures, API_BACKOFF);
    options.onError(`${entry.name} from ${where}`, error, delay);
    retry = clock.after(delay, () => {
      retry = undefined;
      const again = [...failed];
      failed.clear();
      if (!stopped) for (const f of again) void f.informer.start();
    });
  };

  const feeds: Feed[] = [];
  const feed = (
    name: string,
    path: string,
    list: () => Promise<KubernetesListObject<AnyObject>>,
    fieldSelector?: string,
  ): Feed => {
    const entry: Feed = {
      name,
      synced: false,
      informer: new ListWatch<AnyObject>(
        path,
        watch,
        async () => {
          const result = await list();
          failures = 0;
          // The informer fills its cache only after this promise settles (in the microtasks that
          // follow): count the feed as synced on the next turn, never with an empty cache, which
          // would look like "every network was deleted".
          setImmediate(() => {
            entry.synced = true;
            options.onChange(`${name}-listed`);
          });
          return result;
        },
        false,
        undefined,
        fieldSelector,
      ),
    };
    // Status-only updates (every node writes its own) do not change what a node converges to:
    // they are skipped for objects that have a generation, so N nodes do not wake each other up.
    const generations = new Map<string, number | undefined>();
    const key = (o: AnyObject): string => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;
    entry.informer.on("add", (o) => {
      generations.set(key(o), o.metadata?.generation);
      options.onChange(name);
    });
    entry.informer.on("update", (o) => {
      const generation = o.metadata?.generation;
      const before = generations.get(key(o));
      generations.set(key(o), generation);
      if (generation !== undefined && generation === before) return;
      options.onChange(name);
    });
    entry.informer.on("delete", (o) => {
      generations.delete(key(o));
      options.onChange(name);
    });
    entry.informer.on("error", (error: unknown) => {
      if (stopped) return; // aborting the watches on stop reports an AbortError
      onFeedError(entry, error);
    });
    feeds.push(entry);
    return entry;
  };

  const lists = clusterLists(kubeConfig, nodeName, metallbNamespace);
  const networks = feed("symroutenetworks", lists.networks.path, lists.networks.list);
  const pools = feed("ipaddresspools", lists.pools.path, lists.pools.list);
  const l2ads = feed("l2advertisements", lists.l2Advertisements.path, lists.l2Advertisements.list);
  const node = feed("node", lists.node.path, lists.node.list, lists.node.fieldSelector);

  return {
    start() {
      stopped = false;
      for (const f of feeds) void f.informer.start();
    },
    async stop() {
      stopped = true;
      retry?.cancel();
      retry = undefined;
      for (const f of feeds) await f.informer.stop();
    },
    snapshot() {
      if (!feeds.every((f) => f.synced)) return undefined;
      const self = node.informer.get(nodeName);
      if (self === undefined) return undefined;
      return {
        networks: networks.informer.list() as unknown as SymrouteNetwork[],
        pools: pools.informer.list() as unknown as IpAddressPool[],
        l2Advertisements: l2ads.informer.list() as unknown as L2Advertisement[],
        node: { name: nodeName, labels: self.metadata?.labels ?? {} },
      };
    },
    waitingFor() {
      const pending = feeds.filter((f) => !f.synced).map((f) => f.name);
      if (pending.length > 0)
        return `waiting for the first list from the Kubernetes API (${pending.join(", ")})`;
      return `node ${JSON.stringify(nodeName)} is not in the cluster: check --node-name (NODE_NAME)`;
    },
    retryState: () => ({ failures, waiting: [...failed].map((f) => f.name) }),
    async writeStatus(network, status) {
      const ref = {
        group: SYMROUTE_GROUP,
        version: SYMROUTE_VERSION,
        plural: SYMROUTE_PLURAL,
        name: network,
      };
      // The conditions summarise every node's entry: read the object, write this node's entry and
      // the summary under its resourceVersion; another node's write in between is a 409 (re-read).
      for (let attempt = 1; ; attempt++) {
        const current = (await custom.getClusterCustomObjectStatus(ref)) as SymrouteNetwork;
        const nodes: Record<string, NodeStatus> = { ...(current.status?.nodes ?? {}) };
        if (status === undefined) delete nodes[nodeName];
        else nodes[nodeName] = status;
        const summary = summarizeNodes(
          nodes,
          current.metadata.generation,
          current.status?.conditions,
          new Date().toISOString(),
        );
        try {
          await custom.patchClusterCustomObjectStatus(
            {
              ...ref,
              // JSON merge patch: maps merge key by key, so each node touches only its own entry and
              // nodes never overwrite each other (a list, like conditions, is replaced whole).
              body: {
                metadata: { resourceVersion: current.metadata.resourceVersion },
                status: { nodes: { [nodeName]: status ?? null }, ...summary },
              },
            },
            setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
          );
          return;
        } catch (error) {
          if (!(error instanceof ApiException && error.code === 409) || attempt >= STATUS_ATTEMPTS)
            throw error;
        }
      }
    },
  };
}

/** Status writes that lost a race to another node are re-read and retried this many times in all. */
const STATUS_ATTEMPTS = 5;

interface DiscoveringSourceOptions {
  readonly discover: () => KubeConfigDiscovery;
  readonly clock: Clock;
  readonly create: (found: KubeConfigFound) => KubernetesSource;
  readonly onError: (what: string, error: unknown, retryInMs?: number) => void;
}

/**
 * Until a kubeconfig or a service account is found, looks again with backoff (one log line each
 * time, naming every place tried); then hands over to the informers of createKubernetesSource.
 */
export function createDiscoveringSource(options: DiscoveringSourceOptions): KubernetesSource {
  let inner: KubernetesSource | undefined;
  let stopped = true;
  let failures = 0;
  let retry: TimerHandle | undefined;
  let missing = "looking for the Kubernetes API configuration";

  const attempt = (): void => {
    retry = undefined;
    if (stopped) return;
    let found: KubeConfigDiscovery;
    try {
      found = options.discover();
    } catch (error) {
      found = { found: false, tried: [`kubeconfig unreadable: ${errorText(error)}`] };
    }
    if (found.found) {
      failures = 0;
      inner = options.create(found);
      inner.start();
      return;
    }
    failures++;
    missing = describeMissingKubeConfig(found.tried);
    const delay = backoffDelay(failures, DISCOVERY_BACKOFF);
    options.onError("kubeconfig", new Error(missing), delay);
    retry = options.clock.after(delay, attempt);
  };

  return {
    start() {
      stopped = false;
      attempt();
    },
    async stop() {
      stopped = true;
      retry?.cancel();
      retry = undefined;
      await inner?.stop();
    },
    snapshot: () => inner?.snapshot(),
    waitingFor: () => inner?.waitingFor() ?? missing,
    retryState: () => inner?.retryState() ?? { failures, waiting: inner === undefined ? ["kubeconfig"] : [] },
    async writeStatus(network, status) {
      if (inner === undefined) throw new Error(missing);
      await inner.writeStatus(network, status);
    },
  };
}

/** A missing service account does not appear within seconds: look again, but rarely. */
export const DISCOVERY_BACKOFF = { initialMs: 2_000, maxMs: 300_000 } as const;

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));
