// The last cluster view that converged, on disk next to the state file, for one case: the agent
// restarts while the API server is unreachable. Routing is in place either way; with the cache the
// agent can also repair drift during the outage. It is used only after a grace period without any
// answer from the API, so that a stale cache never flaps the node when the API is merely slow.

import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { ClusterSnapshot } from "./source.ts";

export interface ClusterCache {
  load(): Promise<{ readonly snapshot: ClusterSnapshot; readonly savedAt: string } | undefined>;
  save(snapshot: ClusterSnapshot): Promise<void>;
}

/** Only what networksFromCluster reads: no managedFields, no annotations. */
function slim(snapshot: ClusterSnapshot): ClusterSnapshot {
  const meta = (m: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    generation?: number;
  }) => ({
    ...(m.name === undefined ? {} : { name: m.name }),
    ...(m.namespace === undefined ? {} : { namespace: m.namespace }),
    ...(m.labels === undefined ? {} : { labels: m.labels }),
    ...(m.generation === undefined ? {} : { generation: m.generation }),
  });
  return {
    networks: snapshot.networks.map((n) => ({
      metadata: meta(n.metadata),
      ...(n.spec === undefined ? {} : { spec: n.spec }),
    })),
    pools: snapshot.pools.map((p) => ({
      metadata: meta(p.metadata),
      ...(p.spec === undefined ? {} : { spec: p.spec }),
    })),
    l2Advertisements: snapshot.l2Advertisements.map((a) => ({
      metadata: meta(a.metadata),
      ...(a.spec === undefined ? {} : { spec: a.spec }),
    })),
    node: snapshot.node,
  };
}

export function fileClusterCache(path: string): ClusterCache {
  let lastSaved: string | undefined;
  return {
    async load() {
      try {
        const value = JSON.parse(await readFile(path, "utf8")) as {
          version?: number;
          savedAt?: string;
          snapshot?: ClusterSnapshot;
        };
        if (value.version !== 1 || value.snapshot === undefined) return undefined;
        return { snapshot: value.snapshot, savedAt: value.savedAt ?? "?" };
      } catch {
        return undefined;
      }
    },
    async save(snapshot) {
      const body = JSON.stringify(slim(snapshot));
      if (body === lastSaved) return;
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const tmp = `${path}.${process.pid}.tmp`;
      await writeFile(
        tmp,
        `{"version":1,"savedAt":${JSON.stringify(new Date().toISOString())},"snapshot":${body}}\n`,
        {
          mode: 0o600,
        },
      );
      await rename(tmp, path);
      lastSaved = body;
    },
  };
}
