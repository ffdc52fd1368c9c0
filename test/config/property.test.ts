// Property (a): every valid configuration round-trips, and other spellings of it canonicalise to it.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { stringify } from "yaml";
import { parseConfigText, validateConfigObject } from "../../src/config/index.ts";
import { configToDocument, configToYaml } from "./serialize.ts";
import { respell, validConfig } from "./arbitraries.ts";

const runs = Number(process.env["SYMROUTE_FUZZ_RUNS"] ?? "300");

test("a valid config serialised to YAML parses back to the same Config", (t) => {
  let cases = 0;
  fc.assert(
    fc.property(validConfig, (config) => {
      cases++;
      const result = parseConfigText(configToYaml(config));
      assert.ok(result.ok, result.ok ? "" : JSON.stringify(result.issues));
      assert.deepEqual(result.config, config);
    }),
    { numRuns: runs },
  );
  t.diagnostic(`${cases} cases`);
});

test("a valid config as JSON text and as an object validates to the same Config", () => {
  fc.assert(
    fc.property(validConfig, (config) => {
      const document = configToDocument(config);
      const fromJson = parseConfigText(JSON.stringify(document));
      assert.ok(fromJson.ok);
      assert.deepEqual(fromJson.config, config);
      const fromObject = validateConfigObject(JSON.parse(JSON.stringify(document)));
      assert.ok(fromObject.ok);
      assert.deepEqual(fromObject.config, config);
    }),
    { numRuns: Math.max(20, Math.floor(runs / 3)) },
  );
});

test("other spellings of prefixes and gateways canonicalise to the same Config", () => {
  fc.assert(
    fc.property(validConfig, fc.nat(), (config, variant) => {
      const document = configToDocument(config) as {
        podCIDRs: string[];
        networks: Record<string, unknown>[];
      };
      document.podCIDRs = document.podCIDRs.map((p, i) => respell(p, variant + i));
      for (const [k, n] of document.networks.entries()) {
        n["addresses"] = (n["addresses"] as string[]).map((a, i) => respell(a, variant + k + i));
        const gw = n["gateway"];
        // The list form with one element is the same as the single address.
        if (typeof gw === "string")
          n["gateway"] = variant % 2 === 0 ? [respell(gw, variant + 1, true)] : respell(gw, variant, true);
        else if (Array.isArray(gw)) n["gateway"] = (gw as string[]).map((g) => respell(g, variant, true));
      }
      const result = parseConfigText(stringify(document));
      assert.ok(result.ok, result.ok ? "" : JSON.stringify(result.issues));
      assert.deepEqual(result.config, config);
    }),
    { numRuns: Math.max(20, Math.floor(runs / 3)) },
  );
});
