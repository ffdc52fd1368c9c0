// The order of an `ip -batch`: an object that moves (a rule to another priority, a route to
// another table) is added before the old one is deleted, so that no packet meets a moment without
// either; only where the kernel would refuse the addition while the old object exists does the
// deletion go first.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { Change } from "../../src/model/change.ts";
import type { Route, Rule } from "../../src/model/state.ts";
import { renderIpBatch } from "../../src/render/ip.ts";

const PROTO = 201;
const sourceRule = (priority: number): Rule => ({
  family: 4,
  priority,
  from: "100.64.0.0/24",
  action: "lookup",
  table: 20000,
  protocol: PROTO,
});
const linkRoute = (table: number): Route => ({
  family: 4,
  table,
  type: "unicast",
  dst: "100.64.0.0/24",
  dev: "ext0",
  protocol: PROTO,
  scope: 253,
});
const gatewayRoute = (table: number, metric?: number): Route => ({
  family: 4,
  table,
  type: "unicast",
  dst: "default",
  gateway: "100.64.0.1",
  dev: "ext0",
  protocol: PROTO,
  ...(metric === undefined ? {} : { metric }),
});

/** The position of the first line that starts with `prefix`; fails when there is none. */
function lineOf(lines: readonly string[], prefix: string): number {
  const i = lines.findIndex((l) => l.startsWith(prefix));
  assert.ok(i >= 0, `no line starts with "${prefix}" in:\n${lines.join("\n")}`);
  return i;
}

test("a rule moved to another priority is added before the old one is deleted", () => {
  // The changes as the diff lists them: the addition first, the deletion after.
  const changes: Change[] = [
    { kind: "rule", action: "add", rule: sourceRule(1004) },
    { kind: "rule", action: "delete", rule: sourceRule(1001) },
  ];
  const { lines, changeIndex } = renderIpBatch(changes, 4);
  assert.deepEqual(lines, [
    "rule add priority 1004 from 100.64.0.0/24 lookup 20000 proto 201",
    "rule del priority 1001 from 100.64.0.0/24 lookup 20000 proto 201",
  ]);
  assert.deepEqual(changeIndex, [0, 1]);
});

test("routes are added before the rules that lead to them and deleted after the rules", () => {
  const changes: Change[] = [
    { kind: "rule", action: "delete", rule: sourceRule(1001) },
    { kind: "route", action: "delete", route: gatewayRoute(20000) },
    { kind: "route", action: "delete", route: linkRoute(20000) },
    { kind: "route", action: "add", route: linkRoute(20001) },
    { kind: "route", action: "add", route: gatewayRoute(20001) },
    { kind: "rule", action: "add", rule: { ...sourceRule(1004), table: 20001 } },
  ];
  const { lines, changeIndex } = renderIpBatch(changes, 4);
  assert.deepEqual(changeIndex, [3, 4, 5, 0, 1, 2], lines.join("\n"));
});

test("a deletion the kernel would refuse an addition for runs first", () => {
  const cases: { name: string; deleted: Change; added: Change }[] = [
    {
      // The kernel's duplicate check leaves `not` out (measured on 6.18).
      name: "rules that differ only in not",
      deleted: { kind: "rule", action: "delete", rule: { ...sourceRule(1001), not: true } },
      added: { kind: "rule", action: "add", rule: sourceRule(1001) },
    },
    {
      // ... and the goto target.
      name: "goto rules that differ only in their target",
      deleted: {
        kind: "rule",
        action: "delete",
        rule: {
          family: 4,
          priority: 1000,
          fwmark: 0,
          fwmask: 0xff,
          action: "goto",
          goto: 1003,
          protocol: PROTO,
        },
      },
      added: {
        kind: "rule",
        action: "add",
        rule: {
          family: 4,
          priority: 1000,
          fwmark: 0,
          fwmask: 0xff,
          action: "goto",
          goto: 1002,
          protocol: PROTO,
        },
      },
    },
    {
      // `fwmark 0x1` is `fwmark 0x1/0xffffffff` to the kernel.
      name: "fwmark without a mask and with the full mask",
      deleted: {
        kind: "rule",
        action: "delete",
        rule: {
          family: 4,
          priority: 1001,
          fwmark: 1,
          fwmask: 0xffffffff,
          action: "lookup",
          table: 20000,
          protocol: PROTO,
        },
      },
      added: {
        kind: "rule",
        action: "add",
        rule: { family: 4, priority: 1001, fwmark: 1, action: "lookup", table: 20000, protocol: PROTO },
      },
    },
    {
      name: "routes to one destination in one table (another metric)",
      deleted: { kind: "route", action: "delete", route: gatewayRoute(20000, 10) },
      added: { kind: "route", action: "add", route: gatewayRoute(20000, 20) },
    },
  ];
  for (const { name, deleted, added } of cases) {
    const { lines } = renderIpBatch([added, deleted], 4);
    assert.equal(lines.length, 2, name);
    assert.ok(lines[0]?.includes(" del "), `${name}: the deletion first:\n${lines.join("\n")}`);
  }
});

test("only the clashing deletion goes first; the others still wait for the additions", () => {
  const changes: Change[] = [
    { kind: "route", action: "add", route: gatewayRoute(20000, 20) },
    { kind: "route", action: "delete", route: gatewayRoute(20000, 10) },
    { kind: "rule", action: "add", rule: sourceRule(1004) },
    { kind: "rule", action: "delete", rule: sourceRule(1001) },
  ];
  const { lines } = renderIpBatch(changes, 4);
  assert.ok(lineOf(lines, "route del default") < lineOf(lines, "route add default"), lines.join("\n"));
  assert.ok(
    lineOf(lines, "rule add priority 1004") < lineOf(lines, "rule del priority 1001"),
    lines.join("\n"),
  );
});

test("a batch holds the changes of its own family only", () => {
  const changes: Change[] = [
    { kind: "rule", action: "add", rule: { ...sourceRule(1004), family: 6, from: "fd00::/64" } },
    { kind: "rule", action: "delete", rule: sourceRule(1001) },
  ];
  assert.deepEqual(renderIpBatch(changes, 4).changeIndex, [1]);
  assert.deepEqual(renderIpBatch(changes, 6).changeIndex, [0]);
});
