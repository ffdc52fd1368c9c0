// The external segment of the guard tests (explain-guard, guard-ingress): the router's end `r-ext0`
// carries a client's address and a pod-range source it sends from into the node's ext0, as a
// spoofing host would. It knows the node's MAC (pinned on the sender's side only, standing in for
// MetalLB's speaker answering ARP for the LB address; nothing is pinned on the node).

import { strict as assert } from "node:assert";
import { ext0Mac, must, type Netns } from "./netns.ts";

export const SEGMENT_CLIENT = "203.0.113.10";
export const SEGMENT_LB = "1.2.3.4";
export const SEGMENT_NODE = "192.168.1.10";
export const SEGMENT_SPOOF = "10.112.0.5";

/** Runs `argv` in the node; a failure fails the test with the command and its stderr. */
export function mustInNode(node: Netns, argv: readonly string[], input?: string): string {
  const r = node.exec(argv, input);
  assert.equal(r.code, 0, `${argv.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Sets up the segment: the spoofed source sends to the node's management address through ext0,
 * the client to the LB address; `unroutedSources` are more sources sent like the spoofed one.
 */
export function spoofingSegment(node: Netns, unroutedSources: readonly string[] = []): void {
  const mac = ext0Mac(node);
  const lines = [
    "addr add 1.2.3.1/24 dev r-ext0",
    `addr add ${SEGMENT_CLIENT}/32 dev lo`,
    `addr add ${SEGMENT_SPOOF}/32 dev lo`,
    ...unroutedSources.map((a) => `addr add ${a}/32 dev lo`),
    "link set lo up",
    `neigh replace ${SEGMENT_LB} lladdr ${mac} dev r-ext0 nud permanent`,
    `neigh replace ${SEGMENT_NODE} lladdr ${mac} dev r-ext0 nud permanent`,
    `rule add from ${SEGMENT_SPOOF} lookup 99 priority 99`,
    `route add ${SEGMENT_NODE}/32 dev r-ext0 table 99`,
    ...unroutedSources.map((a, i) => `rule add from ${a} lookup 99 priority ${97 - i}`),
    `rule add from ${SEGMENT_CLIENT} lookup 98 priority 98`,
    `route add ${SEGMENT_LB}/32 dev r-ext0 table 98`,
  ];
  must(["ip", "-n", node.peer, "-batch", "-"], `${lines.join("\n")}\n`);
}
