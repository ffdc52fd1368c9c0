// A roll back puts the rules it deleted back in the order the kernel listed them. The kernel lists
// a rule added at a priority after those already there; the roll back used to re-add them in the
// reverse of the order they were deleted, so a priority's rules came back reversed (the marks being
// exclusive, routing was the same, but `ip rule` was not as before). Proved on the real kernel with
// a move of the rule band whose nft transaction is refused (a wrapper corrupts one line), and with a
// delete refused the same way.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createFaultTools, type Fault } from "../reliability/support/fault-tools.ts";
import { configDir, createNode, e2eUnavailable, writeConfigFile } from "../support/netns.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-rollback-order-");

const networks = (count: number, from: number): string => `firewall: nftables
rulePriorities: {from: ${from}, to: ${from + 999}}
networks:
${Array.from({ length: count }, (_, i) => `  - { name: n${i}, addresses: [1.2.${i}.0/24], interface: ext0, gateway: 1.2.${i}.1 }`).join("\n")}
`;

const REFUSED: Fault = {
  kind: "corrupt",
  tool: "nft",
  match: "jump restore",
  sed: "s/jump restore/jump missing-chain/",
};

test("a failed move of the rule band and a failed delete leave ip rule as it was listed", { skip }, (t) => {
  const node = createNode(t);
  const tools = createFaultTools();
  t.after(() => tools.remove());
  const five = writeConfigFile(dir, "five.yaml", networks(5, 1000));
  const moved = writeConfigFile(dir, "moved.yaml", networks(6, 3000));
  const applied = node.symroute(["apply", "-c", five]);
  assert.equal(applied.code, 0, applied.stdout + applied.stderr);
  const rules = (): string => {
    const r = node.exec(["ip", "-j", "rule", "show"]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const before = rules();
  assert.equal((before.match(/"priority":1001,/g) ?? []).length, 5, before);
  const failedMove = node.symroute(["apply", "-c", moved], tools.env(REFUSED));
  assert.equal(failedMove.code, 1, failedMove.stdout + failedMove.stderr);
  assert.match(failedMove.stderr, /apply failed and was rolled back/);
  assert.equal(rules(), before, "after the failed move");
  const failedDelete = node.symroute(
    ["delete"],
    tools.env({ kind: "corrupt", tool: "nft", match: "^delete table inet", sed: "s/symroute/missing/" }),
  );
  assert.equal(failedDelete.code, 1, failedDelete.stdout + failedDelete.stderr);
  assert.match(failedDelete.stderr, /delete failed and was rolled back/);
  assert.equal(rules(), before, "after the failed delete");
});
