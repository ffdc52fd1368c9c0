// The Node (V8) flags the agent process runs with, wherever it is deployed: the DaemonSet, the
// image's entrypoint and the systemd unit pass them (a test checks each), and the benchmark and the
// soak measure the agent with them. They cannot be set from inside a running process.
//
// --lite-mode: V8 interprets and never compiles optimised code (no TurboFan, no feedback until a
//   function is hot): the agent's resident memory at 10 networks drops by about 20 MiB and stops
//   growing with every compiled function; its reconciles cost somewhat more CPU (docs/agent.md).
//   Measured against it (docs/agent.md, "Node flags measured"): without it, with --jitless alone, or
//   with --optimize-for-size, --single-threaded-gc or --no-opt, the agent went over 80 MiB in
//   Kubernetes mode after 50 drift repairs.
// --max-semi-space-size=1: the young generation takes 2 MiB instead of up to 32 MiB; the agent
//   allocates little between reconciles, so scavenges stay rare. Under --lite-mode V8 keeps it that
//   small whatever this flag says (a larger value measured no fewer scavenges, docs/agent.md); the
//   flag bounds it when the agent runs without --lite-mode.
// --no-expose-wasm: --lite-mode turns WebAssembly off anyway, and V8 says so on stderr at every start
//   ("disabling flag --expose_wasm due to conflicting flags"); the agent uses none (nothing in it
//   calls fetch, whose HTTP parser is WebAssembly).

export const AGENT_NODE_FLAGS = ["--lite-mode", "--max-semi-space-size=1", "--no-expose-wasm"] as const;
