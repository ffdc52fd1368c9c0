// The CRD schema: structural as Kubernetes requires, the same keys as the loader, and every example
// (in its custom-resource form) passes it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { configJsonSchema } from "../../src/config/index.ts";
import { configSchema, networkSchema } from "../../src/config/schema.ts";

// import.meta.dirname needs Node 20.11; engines allows 20.9.
const here = fileURLToPath(new URL(".", import.meta.url));

type Schema = Record<string, unknown>;
const examplesDir = join(here, "..", "..", "examples");

function* nodes(schema: Schema, where = "spec"): Generator<[string, Schema]> {
  yield [where, schema];
  const properties = schema["properties"] as Record<string, Schema> | undefined;
  for (const [key, child] of Object.entries(properties ?? {})) yield* nodes(child, `${where}.${key}`);
  const items = schema["items"] as Schema | undefined;
  if (items !== undefined) yield* nodes(items, `${where}[]`);
}

/** Just the keywords the schema uses; enough to check the examples against it. */
function violations(schema: Schema, value: unknown, where = "spec"): string[] {
  const type = schema["type"];
  const out: string[] = [];
  const typeOk =
    type === "object"
      ? typeof value === "object" && value !== null && !Array.isArray(value)
      : type === "array"
        ? Array.isArray(value)
        : type === "integer"
          ? Number.isInteger(value)
          : typeof value === type;
  if (!typeOk) return [`${where}: not ${String(type)}`];
  const enumValues = schema["enum"] as unknown[] | undefined;
  if (enumValues !== undefined && !enumValues.includes(value)) out.push(`${where}: not in enum`);
  if (typeof value === "number") {
    if (typeof schema["minimum"] === "number" && value < schema["minimum"])
      out.push(`${where}: below minimum`);
    if (typeof schema["maximum"] === "number" && value > schema["maximum"])
      out.push(`${where}: above maximum`);
  }
  if (typeof value === "string") {
    if (typeof schema["pattern"] === "string" && !new RegExp(schema["pattern"]).test(value))
      out.push(`${where}: pattern`);
    if (typeof schema["maxLength"] === "number" && value.length > schema["maxLength"])
      out.push(`${where}: too long`);
    if (typeof schema["minLength"] === "number" && value.length < schema["minLength"])
      out.push(`${where}: too short`);
  }
  if (Array.isArray(value)) {
    if (typeof schema["maxItems"] === "number" && value.length > schema["maxItems"])
      out.push(`${where}: too many`);
    if (typeof schema["minItems"] === "number" && value.length < schema["minItems"])
      out.push(`${where}: too few`);
    value.forEach((item, i) => out.push(...violations(schema["items"] as Schema, item, `${where}[${i}]`)));
  } else if (typeof value === "object" && value !== null) {
    const properties = (schema["properties"] ?? {}) as Record<string, Schema>;
    for (const key of (schema["required"] ?? []) as string[])
      if (!(key in value)) out.push(`${where}.${key}: required`);
    for (const [key, v] of Object.entries(value)) {
      const child = properties[key];
      if (child === undefined) out.push(`${where}.${key}: unknown (would be pruned)`);
      else out.push(...violations(child, v, `${where}.${key}`));
    }
  }
  return out;
}

/** A file turned into its custom-resource form: gateway always a list, the mask an integer. */
function asResourceSpec(document: Record<string, unknown>): Record<string, unknown> {
  const spec = structuredClone(document);
  for (const network of (spec["networks"] ?? []) as Record<string, unknown>[]) {
    if (typeof network["gateway"] === "string") network["gateway"] = [network["gateway"]];
  }
  const marks = spec["marks"] as Record<string, unknown> | undefined;
  if (typeof marks?.["mask"] === "string") marks["mask"] = parseInt(marks["mask"], 16);
  return spec;
}

test("the CRD schema is structural", () => {
  for (const [where, node] of nodes(configJsonSchema())) {
    assert.ok(typeof node["type"] === "string", `${where} has no type`);
    assert.ok(!("additionalProperties" in node), `${where} has additionalProperties`);
    assert.ok(!("x-kubernetes-preserve-unknown-fields" in node), `${where} preserves unknown fields`);
    for (const combinator of ["anyOf", "oneOf", "allOf", "not"]) {
      assert.ok(!(combinator in node), `${where} uses ${combinator}`);
    }
    if (node["type"] === "object")
      assert.ok("properties" in node, `${where} is an object without properties`);
    if (node["type"] === "array") assert.ok("items" in node, `${where} is an array without items`);
    assert.ok(!("default" in node), `${where} has a default (the loader fills them in)`);
  }
});

test("the CRD schema has exactly the loader's keys, in its order", () => {
  const schema = configJsonSchema();
  const props = (s: unknown): string[] => Object.keys((s as Schema)["properties"] as Schema);
  const top = schema["properties"] as Record<string, Schema>;
  const network = (top["networks"]?.["items"] ?? {}) as Schema;
  assert.deepEqual(props(schema), Object.keys(configSchema.shape));
  assert.deepEqual(props(network), Object.keys(networkSchema.shape));
  assert.deepEqual(props((network["properties"] as Record<string, Schema>)["vlan"]), ["parent", "id"]);
  assert.deepEqual(props(top["marks"]), ["mask", "avoid"]);
  assert.deepEqual(props(top["tables"]), ["from", "to"]);
  assert.deepEqual(props(top["rulePriorities"]), ["from", "to"]);
});

test("every example, in its custom-resource form, passes the CRD schema", () => {
  const files = readdirSync(examplesDir).filter((f) => f.endsWith(".yaml"));
  assert.ok(files.length >= 6);
  for (const file of files) {
    const spec = asResourceSpec(
      parse(readFileSync(join(examplesDir, file), "utf8")) as Record<string, unknown>,
    );
    assert.deepEqual(violations(configJsonSchema(), spec), [], file);
  }
});

test("the CRD schema refuses what it can see is wrong", () => {
  const bad = {
    networks: [{ name: "Bad Name", addresses: [], interface: "a-very-long-interface", gateway: "1.2.3.1" }],
  };
  const found = violations(configJsonSchema(), bad);
  assert.ok(found.includes("spec.networks[0].name: pattern"), found.join("\n"));
  assert.ok(found.includes("spec.networks[0].addresses: too few"));
  assert.ok(found.includes("spec.networks[0].interface: too long"));
  assert.ok(found.includes("spec.networks[0].gateway: not array"));
});
