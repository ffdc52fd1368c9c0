// docs/config.md's reference tables against the schema: the same fields in the same order, each
// default the one the schema fills in, and every choice and integer bound of a field named.

import { test } from "node:test";
import assert from "node:assert/strict";
import { tableAfter } from "../support/markdown-table.ts";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { z } from "zod";
import { configJsonSchema } from "../../src/config/index.ts";
import { configSchema, networkSchema } from "../../src/config/schema.ts";

const doc = readFileSync(fileURLToPath(new URL("../../docs/config.md", import.meta.url)), "utf8");
type Schema = Record<string, unknown>;

/** The rows of the first table after `heading`: field name (without backticks) -> cells. */
function table(heading: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const cells of tableAfter(doc, heading, "docs/config.md")) {
    const name = /^`([^`]+)`$/.exec(cells[0] ?? "")?.[1];
    if (name !== undefined) rows.set(name, cells.slice(1));
  }
  return rows;
}

/** A default as the docs write it: YAML flow style, the mark mask in hex. */
function flow(value: unknown, key = ""): string {
  if (Array.isArray(value)) return `[${value.map((v) => flow(v)).join(", ")}]`;
  if (typeof value === "object" && value !== null)
    return `{${Object.entries(value)
      .map(([k, v]) => `${k}: ${flow(v, k)}`)
      .join(", ")}}`;
  if (key === "mask" && typeof value === "number") return `0x${value.toString(16)}`;
  return String(value);
}

/** Every enum value and integer bound in a JSON schema node and below (not in a list of mappings). */
function named(node: Schema): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(node)) {
    if (k === "items" && (v as Schema)["type"] === "object") continue;
    if (k === "enum") out.push(...(v as string[]));
    else if ((k === "minimum" || k === "maximum") && typeof v === "number") out.push(String(v));
    else if (typeof v === "object" && v !== null) out.push(...named(v as Schema));
  }
  return out;
}

function check(heading: string, shape: Record<string, z.ZodType>, json: Schema): void {
  const rows = table(heading);
  assert.deepEqual([...rows.keys()], Object.keys(shape), `${heading}: the fields`);
  const properties = json["properties"] as Record<string, Schema>;
  const required = (json["required"] ?? []) as string[];
  for (const [key, schema] of Object.entries(shape)) {
    const [, defaultCell = "", allowed = ""] = rows.get(key) ?? [];
    const parsed = schema.safeParse(undefined);
    if (required.includes(key)) assert.match(defaultCell, /^required/, `${heading} ${key}: required`);
    else if (parsed.success && parsed.data !== undefined)
      assert.equal(defaultCell, `\`${flow(parsed.data, key)}\``, `${heading} ${key}: the default`);
    // A row that sends the reader to its own table is checked there.
    if (allowed.startsWith("see [")) continue;
    for (const word of named(properties[key] ?? {})) {
      const hex = `0x${Number(word).toString(16)}`;
      assert.ok(
        allowed.includes(word) || allowed.includes(hex),
        `${heading} ${key}: "${word}" in ${allowed}`,
      );
    }
  }
}

test("docs/config.md's reference tables match the schema", () => {
  const json = configJsonSchema();
  const top = json["properties"] as Record<string, Schema>;
  check("## Top level", configSchema.shape, json);
  check("### `marks`", configSchema.shape.marks.unwrap().shape, top["marks"] ?? {});
  check("## `networks[]`", networkSchema.shape, (top["networks"]?.["items"] ?? {}) as Schema);
});
