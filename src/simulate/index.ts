// The packet-path simulator: compile a NodeState once, then trace packets through it.

export { compileRoutingState, type RoutingIndex } from "./compile.ts";
export { tracePacket, simulatorSysctls, sysctlsForInterface, effectiveRpFilter } from "./trace.ts";
export { formatTrace, formatVerdict, formatRule, formatRoute, tableName } from "./format.ts";
export type {
  Packet,
  Trace,
  Step,
  Verdict,
  RouteErrno,
  RpFilterVerdict,
  TraceOptions,
  GuardVerdict,
} from "./types.ts";
