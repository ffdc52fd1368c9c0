// Read-only HTTP endpoints: /healthz (the process answers), /readyz (a valid configuration is in force
// and the last reconcile succeeded), /metrics (Prometheus). Nothing here can change routing: every
// method other than GET and HEAD is refused, and there is no other route.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { SymrouteError } from "../model/errors.ts";
import type { Registry } from "prom-client";
import type { Logger } from "./logger.ts";

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export const DEFAULT_LISTEN = "127.0.0.1:9473";

/** "127.0.0.1:9473", "[::1]:9473", ":9473" is refused (it would mean every address). */
export function parseListen(text: string): ListenAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):([0-9]{1,5})$/.exec(text);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (match === null || host === undefined || !Number.isInteger(port) || port > 65535) {
    throw new SymrouteError("invalid-argument", `--listen ${JSON.stringify(text)} is not HOST:PORT`, {
      hint: 'give an address and a port, e.g. "127.0.0.1:9473" or "[::1]:9473" (port 0 picks a free one)',
    });
  }
  return { host, port };
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

export interface Readiness {
  readonly ready: boolean;
  readonly reason: string;
}

export interface AgentHttpServer {
  readonly address: ListenAddress;
  close(): Promise<void>;
}

export async function startHttpServer(options: {
  readonly listen: ListenAddress;
  readonly registry: Registry;
  readonly readiness: () => Readiness;
}): Promise<AgentHttpServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("read-only\n");
      return;
    }
    if (path === "/healthz") {
      response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else if (path === "/readyz") {
      const { ready, reason } = options.readiness();
      response.writeHead(ready ? 200 : 503, { "content-type": "text/plain" }).end(`${reason}\n`);
    } else if (path === "/metrics") {
      options.registry.metrics().then(
        (text) => response.writeHead(200, { "content-type": options.registry.contentType }).end(text),
        (error: unknown) =>
          response.writeHead(500, { "content-type": "text/plain" }).end(`${String(error)}\n`),
      );
    } else {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found: /healthz /readyz /metrics\n");
    }
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void =>
      reject(
        new SymrouteError(
          "invalid-argument",
          `cannot listen on ${options.listen.host}:${options.listen.port}: ${error.code ?? error.message}`,
          { cause: error, hint: "choose another --listen address or port" },
        ),
      );
    server.once("error", onError);
    server.listen(options.listen.port, options.listen.host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return {
    address: { host: bound.address, port: bound.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The agent's endpoints; a listener off loopback is allowed (read-only) but logged. */
export async function startAgentEndpoints(options: {
  readonly listen: ListenAddress;
  readonly registry: Registry;
  readonly readiness: () => Readiness;
  readonly logger: Logger;
}): Promise<AgentHttpServer> {
  if (!isLoopback(options.listen.host)) {
    options.logger.warn(
      { listen: options.listen },
      "the health and metrics endpoints listen on a non-loopback address (they are read-only)",
    );
  }
  return startHttpServer(options);
}
