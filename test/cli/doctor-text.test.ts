// doctor's closing line says what was checked: with no network there is no path to call healthy.

import { test } from "node:test";
import assert from "node:assert/strict";
import { formatDoctorText } from "../../src/cli/commands/doctor.ts";

const plain = (text: string): string => text.replace(/\x1b\[[0-9;]*m/g, "");

test("no networks: doctor says there was nothing to check, not that every path works", () => {
  assert.equal(
    plain(formatDoctorText({ healthy: true, findings: [] })),
    "Nothing to check: no networks for this node in the configuration.\n",
  );
});

test("networks checked and all fine: healthy", () => {
  const ok = {
    network: "public",
    family: 4 as const,
    path: "gateway" as const,
    ok: true,
    summary: "1.2.3.1 resolved on ext0",
  };
  assert.equal(
    plain(formatDoctorText({ healthy: true, findings: [ok] })),
    "ok   public IPv4: gateway: 1.2.3.1 resolved on ext0\nHealthy: every path checked works.\n",
  );
});

test("an ok finding with a warning is labelled warn, prints it, and the node stays healthy", () => {
  const warned = {
    network: "public",
    family: 4 as const,
    path: "gateway" as const,
    ok: true,
    summary: "gateway 1.2.3.1: not resolved yet",
    warning: "a router that checks ARP senders would ignore the node's requests",
  };
  assert.equal(
    plain(formatDoctorText({ healthy: true, findings: [warned] })),
    "warn public IPv4: gateway: gateway 1.2.3.1: not resolved yet\n" +
      "       warning: a router that checks ARP senders would ignore the node's requests\n" +
      "Healthy: every path checked works (1 warning above).\n",
  );
});
