// The `-o json` error body has one shape for every error: kind, message, details, and hint when
// there is one. A bug in symroute (kind `internal`) printed only kind and message.

import { test } from "node:test";
import assert from "node:assert/strict";
import { errorJson } from "../../src/cli/output.ts";
import { SymrouteError } from "../../src/model/errors.ts";

test("an internal error's JSON has details and the hint the text output gives", () => {
  assert.deepEqual(errorJson(new TypeError("x is undefined")), {
    kind: "internal",
    message: "x is undefined",
    details: [],
    hint: "this is a bug in symroute; please report it with the command you ran",
  });
  assert.deepEqual(errorJson("thrown text"), {
    kind: "internal",
    message: "thrown text",
    details: [],
    hint: "this is a bug in symroute; please report it with the command you ran",
  });
});

test("a SymrouteError's JSON is its fields; hint only when it has one", () => {
  assert.deepEqual(errorJson(new SymrouteError("busy", "held", { hint: "wait", details: ["a"] })), {
    kind: "busy",
    message: "held",
    details: ["a"],
    hint: "wait",
  });
  assert.deepEqual(errorJson(new SymrouteError("kernel", "failed")), {
    kind: "kernel",
    message: "failed",
    details: [],
  });
});
