// A Kubernetes object given where the configuration file belongs (the shipped ConfigMap, most
// often): the first problem says what it is and what to give instead.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parseConfigText } from "../../src/config/index.ts";

const messages = (text: string): string[] => {
  const result = parseConfigText(text);
  assert.equal(result.ok, false);
  return result.ok ? [] : result.issues.map((i) => i.message);
};

test("deploy/configmap.yaml as the configuration: told to give its config.yaml's text", () => {
  const text = readFileSync(new URL("../../deploy/configmap.yaml", import.meta.url), "utf8");
  assert.match(
    messages(text)[0] ?? "",
    /^this is a Kubernetes "ConfigMap" object, not a symroute configuration: the configuration is the text of one of its data keys/,
  );
});

test("a SymrouteNetwork, or any other object, is named; a plain file with a key named kind is not", () => {
  assert.match(
    messages("apiVersion: symroute.io/v1alpha1\nkind: SymrouteNetwork\nspec: {}\n")[0] ?? "",
    /"SymrouteNetwork" object, not a symroute configuration: its spec is one network/,
  );
  assert.match(
    messages("apiVersion: v1\nkind: Pod\n")[0] ?? "",
    /"Pod" object, not a symroute configuration; docs\/config\.md/,
  );
  assert.ok(!messages("kind: x\nnetworks: []\n").some((m) => m.includes("Kubernetes")));
});
