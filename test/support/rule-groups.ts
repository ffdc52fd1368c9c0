// What the fwmark-rule tests share: a config of many networks with gateways of their own, and the
// kernel's answer for each network's mark (`ip route get ... mark M`).

import assert from "node:assert/strict";
import type { Netns } from "./netns.ts";

/** `count` networks with their own gateways on ext0 (10.N.3.0/24 via 10.N.3.1), marks 1..count. */
export const gatewayNetworks = (firewall: string, count: number): string =>
  `firewall: ${firewall}\nnetworks:\n${Array.from(
    { length: count },
    (_, i) => `  - { name: n${i}, addresses: [10.${i}.3.0/24], interface: ext0, gateway: 10.${i}.3.1 }\n`,
  ).join("")}`;

/** `ip route get DST [mark M]` (the family from the address): the kernel's answer, or its error. */
export function routeGet(node: Netns, dst: string, mark?: number): string {
  const r = node.exec([
    "ip",
    "route",
    "get",
    dst,
    ...(mark === undefined ? [] : ["mark", `0x${mark.toString(16)}`]),
  ]);
  return r.code === 0 ? r.stdout : `error: ${r.stderr}`;
}

/**
 * Each of gatewayNetworks' `count` marks (i + 1) routed by its table and a packet without a mark
 * by main, asked in one `ip -batch`: what is routed otherwise (none when all is right).
 */
export function misrouted(node: Netns, count: number): string[] {
  const gets = Array.from(
    { length: count },
    (_, i) => `route get 198.51.100.7 mark 0x${(i + 1).toString(16)}`,
  );
  const r = node.exec(["ip", "-4", "-batch", "-"], `${gets.join("\n")}\nroute get 198.51.100.7\n`);
  assert.equal(r.code, 0, r.stderr);
  const answers = r.stdout.split("\n").filter((l) => l.startsWith("198.51.100.7"));
  const wrong: string[] = [];
  for (let i = 0; i < count; i++)
    if (!new RegExp(`via 10\\.${i}\\.3\\.1 dev ext0 table ${20000 + i} `).test(answers[i] ?? ""))
      wrong.push(`mark ${i + 1}: ${answers[i]}`);
  if (!/via 192\.168\.1\.1 dev eth0/.test(answers[count] ?? "")) wrong.push(`no mark: ${answers[count]}`);
  return wrong;
}
