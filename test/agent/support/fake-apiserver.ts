// A small Kubernetes API server of the test's own on 127.0.0.1: list and watch (with
// resourceVersion) for a few collections, 410 Gone after a compaction, merge-patch of a status
// subresource, and an outage mode in which connections are refused. Enough for client-node's
// informers; nothing more.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";

type Obj = {
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    generation?: number;
  };
  [k: string]: unknown;
};

interface Collection {
  readonly objects: Map<string, Obj>;
  readonly events: { rv: number; type: string; object: Obj }[];
}

interface WatchStream {
  readonly path: string;
  readonly fieldName?: string;
  readonly response: ServerResponse;
}

export interface Request {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly body?: unknown;
}

export class FakeApiServer {
  readonly requests: Request[] = [];
  /** Status patches refused with 409 because their resourceVersion was stale. */
  conflicts = 0;
  #rv = 100;
  /** Watches from an older resourceVersion than this get 410 Gone. */
  #oldestRv = 0;
  #collections = new Map<string, Collection>();
  #watches = new Set<WatchStream>();
  #sockets = new Set<Socket>();
  #server: Server | undefined;
  port = 0;

  /** Registers a collection path, e.g. /apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools. */
  collection(path: string, objects: Obj[] = []): this {
    const c: Collection = { objects: new Map(), events: [] };
    this.#collections.set(path, c);
    for (const o of objects) this.#store(c, "ADDED", o);
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => this.#handle(req, res));
    server.on("connection", (s: Socket) => {
      this.#sockets.add(s);
      s.on("close", () => this.#sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  /** An outage: every connection dropped, new ones refused, until start() again (same port). */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server === undefined) return;
    for (const w of this.#watches) w.response.destroy();
    this.#watches.clear();
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  upsert(path: string, object: Obj): void {
    const c = this.#get(path);
    this.#store(c, c.objects.has(object.metadata.name) ? "MODIFIED" : "ADDED", object);
  }

  remove(path: string, name: string): void {
    const c = this.#get(path);
    const old = c.objects.get(name);
    if (old === undefined) return;
    c.objects.delete(name);
    const rv = ++this.#rv;
    this.#emit(path, c, {
      rv,
      type: "DELETED",
      object: { ...old, metadata: { ...old.metadata, resourceVersion: String(rv) } },
    });
  }

  get(path: string, name: string): Obj | undefined {
    return this.#get(path).objects.get(name);
  }

  /**
   * Like etcd compaction: history before now is gone. Open watches get an ERROR 410 event and are
   * closed; a change made `silently` afterwards reaches clients only through a relist.
   */
  compact(): void {
    this.#oldestRv = this.#rv + 1;
    for (const w of this.#watches) {
      w.response.end(
        `${JSON.stringify({ type: "ERROR", object: { kind: "Status", apiVersion: "v1", status: "Failure", reason: "Expired", code: 410, message: "too old resource version" } })}\n`,
      );
    }
    this.#watches.clear();
  }

  /** Changes an object without telling current watchers (they were just cut off by compact()). */
  upsertSilently(path: string, object: Obj): void {
    const c = this.#get(path);
    const rv = ++this.#rv;
    c.objects.set(object.metadata.name, {
      ...object,
      metadata: { ...object.metadata, resourceVersion: String(rv) },
    });
  }

  listCount(path: string): number {
    return this.requests.filter((r) => r.method === "GET" && r.path === path && r.query.watch !== "true")
      .length;
  }

  #get(path: string): Collection {
    const c = this.#collections.get(path);
    if (c === undefined) throw new Error(`no collection ${path}`);
    return c;
  }

  #store(c: Collection, type: string, object: Obj): void {
    const rv = ++this.#rv;
    const stored = { ...object, metadata: { ...object.metadata, resourceVersion: String(rv) } };
    c.objects.set(object.metadata.name, stored);
    const path = [...this.#collections.entries()].find(([, v]) => v === c)?.[0] ?? "";
    this.#emit(path, c, { rv, type, object: stored });
  }

  #emit(path: string, c: Collection, event: { rv: number; type: string; object: Obj }): void {
    c.events.push(event);
    for (const w of this.#watches) {
      if (w.path !== path) continue;
      if (w.fieldName !== undefined && w.fieldName !== event.object.metadata.name) continue;
      w.response.write(`${JSON.stringify({ type: event.type, object: event.object })}\n`);
    }
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://x");
    const query = Object.fromEntries(url.searchParams.entries());
    const chunks: Buffer[] = [];
    req.on("data", (b: Buffer) => chunks.push(b));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const body = text === "" ? undefined : (JSON.parse(text) as unknown);
      this.requests.push({
        method: req.method ?? "GET",
        path: url.pathname,
        query,
        ...(body === undefined ? {} : { body }),
      });
      const fieldName = /^metadata\.name=(.+)$/.exec(query.fieldSelector ?? "")?.[1];
      const json = (status: number, value: unknown): void => {
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(value));
      };
      if (req.method === "PATCH" && url.pathname.endsWith("/status")) {
        const collectionPath = url.pathname.replace(/\/[^/]+\/status$/, "");
        const name = /\/([^/]+)\/status$/.exec(url.pathname)?.[1] ?? "";
        const c = this.#collections.get(collectionPath);
        const current = c?.objects.get(name);
        if (c === undefined || current === undefined) return json(404, { kind: "Status", code: 404 });
        if (req.headers["content-type"] !== "application/merge-patch+json") {
          return json(415, {
            kind: "Status",
            code: 415,
            message: `unsupported ${req.headers["content-type"]}`,
          });
        }
        const patch = body as { status?: unknown; metadata?: { resourceVersion?: string } };
        // Optimistic concurrency, as the real API server does when the patch names a resourceVersion.
        const expected = patch.metadata?.resourceVersion;
        if (expected !== undefined && expected !== current.metadata.resourceVersion) {
          this.conflicts++;
          return json(409, {
            kind: "Status",
            code: 409,
            reason: "Conflict",
            message: "the object has been modified",
          });
        }
        const next = { ...current, status: mergePatch(current.status, patch.status) };
        this.#store(c, "MODIFIED", next);
        return json(200, c.objects.get(name));
      }
      const one = /^(.*)\/([^/]+)$/.exec(url.pathname.replace(/\/status$/, ""));
      const parent = one === null ? undefined : this.#collections.get(one[1] as string);
      if (req.method === "GET" && one !== null && parent !== undefined) {
        const object = parent.objects.get(one[2] as string);
        return object === undefined ? json(404, { kind: "Status", code: 404 }) : json(200, object);
      }
      const c = this.#collections.get(url.pathname);
      if (req.method !== "GET" || c === undefined) return json(404, { kind: "Status", code: 404 });
      const items = [...c.objects.values()].filter(
        (o) => fieldName === undefined || o.metadata.name === fieldName,
      );
      if (query.watch !== "true") {
        return json(200, {
          kind: "List",
          apiVersion: "v1",
          metadata: { resourceVersion: String(this.#rv) },
          items,
        });
      }
      const from = Number(query.resourceVersion ?? "0");
      if (from < this.#oldestRv - 1) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          `${JSON.stringify({ type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired", message: "too old resource version" } })}\n`,
        );
        return;
      }
      res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
      res.flushHeaders();
      const stream: WatchStream = {
        path: url.pathname,
        ...(fieldName === undefined ? {} : { fieldName }),
        response: res,
      };
      for (const e of c.events) {
        if (e.rv > from && (fieldName === undefined || e.object.metadata.name === fieldName)) {
          res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
        }
      }
      this.#watches.add(stream);
      res.on("close", () => this.#watches.delete(stream));
    });
  }
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    typeof target === "object" && target !== null && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}
