// The lab's probe: one process per namespace, started with `ip netns exec NS node probe`.
// It serves TCP and UDP echo on the ports it is given and makes client connections on request,
// so that a whole connectivity matrix needs no process per probe and no nc/socat/curl.
//
// Protocol: one JSON object per line. Start-up prints {"ready":true} once every listener is bound.
// Requests on stdin carry an id; each gets one answer line with the same id.
//   {"id":1,"op":"connect","proto":"tcp"|"udp","host":"1.2.3.4","port":8080,"timeoutMs":1500,"source"?:"..."}
//   {"id":2,"op":"send-udp","host":"...","port":8081,"source":"...","payload":"..."}
//   {"id":3,"op":"received","payload":"..."}
// A connect answers ok only when the echo comes back from the address that was asked for: a UDP
// reply from another source address would be dropped by a real client too.
// Listener arguments: --listen tcp:PORT, --listen udp:PORT (wildcard, both families),
// --stay keeps serving after stdin closes (`lab up`),
// --listen udp:ADDRESS:PORT (a socket bound to one local address, for UDP replies from an LB address
// that is local, where a wildcard socket would answer from the primary address).

import { createServer, connect as tcpConnect, isIPv6 } from "node:net";
import type { Server, Socket } from "node:net";
import { createSocket } from "node:dgram";
import type { Socket as UdpSocket } from "node:dgram";
import { createInterface } from "node:readline";
import { randomBytes } from "node:crypto";

export interface ListenSpec {
  readonly proto: "tcp" | "udp";
  readonly port: number;
  /** A local address to bind; undefined is the wildcard of both families. */
  readonly address?: string;
}

interface ConnectRequest {
  readonly op: "connect";
  readonly proto: "tcp" | "udp";
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  readonly source?: string;
}

interface SendUdpRequest {
  readonly op: "send-udp";
  readonly host: string;
  readonly port: number;
  readonly source?: string;
  readonly payload: string;
}

interface ReceivedRequest {
  readonly op: "received";
  readonly payload: string;
}

export type ProbeRequest = ConnectRequest | SendUdpRequest | ReceivedRequest;

export interface ProbeAnswer {
  readonly id: number;
  readonly ok: boolean;
  readonly detail: string;
}

export function formatListen(spec: ListenSpec): string {
  return spec.address === undefined
    ? `${spec.proto}:${spec.port}`
    : `${spec.proto}:${spec.address}:${spec.port}`;
}

export function parseListen(text: string): ListenSpec {
  const first = text.indexOf(":");
  const last = text.lastIndexOf(":");
  const proto = text.slice(0, first);
  const port = Number(text.slice(last + 1));
  if ((proto !== "tcp" && proto !== "udp") || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`--listen must be tcp:PORT, udp:PORT or udp:ADDRESS:PORT, not ${JSON.stringify(text)}`);
  }
  return first === last ? { proto, port } : { proto, port, address: text.slice(first + 1, last) };
}

/** Payloads seen by this probe's listeners, for the "was it delivered?" question. */
const received = new Set<string>();
const RECEIVED_LIMIT = 10_000;

function remember(payload: string): void {
  if (received.size >= RECEIVED_LIMIT) received.clear();
  received.add(payload);
}

function listenTcp(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => {
      socket.on("error", () => socket.destroy());
      socket.on("data", (chunk: Buffer) => {
        remember(chunk.toString("utf8"));
        socket.write(chunk);
      });
    });
    server.once("error", reject);
    // "::" with ipv6Only false takes IPv4 too, as v4-mapped addresses.
    server.listen({ port, host: "::", ipv6Only: false }, () => resolve(server));
  });
}

function listenUdp(port: number, address: string | undefined): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const v6 = address === undefined || isIPv6(address);
    const socket = createSocket({ type: v6 ? "udp6" : "udp4", reuseAddr: true, ipv6Only: false });
    socket.on("message", (message, rinfo) => {
      remember(message.toString("utf8"));
      socket.send(message, rinfo.port, rinfo.address);
    });
    socket.once("error", reject);
    socket.bind({ port, address: address ?? "::" }, () => resolve(socket));
  });
}

/** v4-mapped IPv6 addresses as plain IPv4, so that reply addresses compare with what was asked. */
function plainAddress(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

function connectTcp(request: ConnectRequest, nonce: string): Promise<Omit<ProbeAnswer, "id">> {
  return new Promise((resolve) => {
    let socket: Socket | undefined;
    let settled = false;
    const finish = (ok: boolean, detail: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket?.destroy();
      resolve({ ok, detail });
    };
    // The timeout is the verdict "dropped", not a synchronisation delay.
    const timer = setTimeout(
      () => finish(false, `no answer within ${request.timeoutMs} ms`),
      request.timeoutMs,
    );
    let echoed = "";
    socket = tcpConnect({
      host: request.host,
      port: request.port,
      ...(request.source === undefined ? {} : { localAddress: request.source }),
    });
    socket.on("connect", () => socket?.write(nonce));
    socket.on("data", (chunk: Buffer) => {
      echoed += chunk.toString("utf8");
      if (echoed === nonce) finish(true, `echo from ${request.host}:${request.port}`);
    });
    socket.on("error", (error: NodeJS.ErrnoException) => finish(false, error.code ?? error.message));
  });
}

function connectUdp(request: ConnectRequest, nonce: string): Promise<Omit<ProbeAnswer, "id">> {
  return new Promise((resolve) => {
    const socket = createSocket(isIPv6(request.host) ? "udp6" : "udp4");
    let settled = false;
    const finish = (ok: boolean, detail: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      resolve({ ok, detail });
    };
    const timer = setTimeout(
      () => finish(false, `no answer within ${request.timeoutMs} ms`),
      request.timeoutMs,
    );
    socket.on("message", (message, rinfo) => {
      if (message.toString("utf8") !== nonce) return;
      const from = plainAddress(rinfo.address);
      if (from === request.host && rinfo.port === request.port) {
        finish(true, `echo from ${from}:${rinfo.port}`);
      } else {
        finish(false, `echo came from ${from}:${rinfo.port}, not ${request.host}:${request.port}`);
      }
    });
    socket.on("error", (error: NodeJS.ErrnoException) => finish(false, error.code ?? error.message));
    socket.bind({ port: 0, ...(request.source === undefined ? {} : { address: request.source }) }, () => {
      socket.send(nonce, request.port, request.host);
    });
  });
}

function sendUdp(request: SendUdpRequest): Promise<Omit<ProbeAnswer, "id">> {
  return new Promise((resolve) => {
    const socket = createSocket(isIPv6(request.host) ? "udp6" : "udp4");
    socket.on("error", (error: NodeJS.ErrnoException) => {
      socket.close();
      resolve({ ok: false, detail: error.code ?? error.message });
    });
    socket.bind({ port: 0, ...(request.source === undefined ? {} : { address: request.source }) }, () => {
      socket.send(request.payload, request.port, request.host, (error) => {
        socket.close();
        resolve(error === null ? { ok: true, detail: "sent" } : { ok: false, detail: error.message });
      });
    });
  });
}

async function answer(request: ProbeRequest): Promise<Omit<ProbeAnswer, "id">> {
  switch (request.op) {
    case "connect": {
      const nonce = `probe-${randomBytes(8).toString("hex")}`;
      return request.proto === "tcp" ? connectTcp(request, nonce) : connectUdp(request, nonce);
    }
    case "send-udp":
      return sendUdp(request);
    case "received":
      return {
        ok: received.has(request.payload),
        detail: received.has(request.payload) ? "seen" : "not seen",
      };
  }
}

/** The probe's body; src/lab/probe-main.ts is the file a namespace runs. */
export async function runProbe(argv: readonly string[]): Promise<void> {
  const listens: ListenSpec[] = [];
  let stay = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--listen") listens.push(parseListen(argv[++i] ?? ""));
    else if (argv[i] === "--stay") stay = true;
    else throw new Error(`unknown argument ${JSON.stringify(argv[i])}`);
  }
  const closers: Array<() => void> = [];
  for (const spec of listens) {
    if (spec.proto === "tcp") {
      const server = await listenTcp(spec.port);
      closers.push(() => server.close());
    } else {
      const socket = await listenUdp(spec.port, spec.address);
      closers.push(() => socket.close());
    }
  }
  const write = (value: unknown): void => {
    process.stdout.write(`${JSON.stringify(value)}\n`);
  };
  write({ ready: true });
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (line.trim() === "") return;
    const message = JSON.parse(line) as ProbeRequest & { id: number };
    answer(message).then(
      (result) => write({ id: message.id, ...result }),
      (error: unknown) => write({ id: message.id, ok: false, detail: String(error) }),
    );
  });
  // The lab ends a probe by closing its stdin (or by killing it); either way nothing lingers.
  // With --stay (`lab up`) the probe outlives the command and `lab down` kills it.
  lines.on("close", () => {
    if (stay) return;
    for (const close of closers) close();
    process.exit(0);
  });
}
