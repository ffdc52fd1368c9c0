// The custom resource's openAPIV3Schema, generated from the config schema (schema.ts) and made
// structural as Kubernetes requires: no additionalProperties (the API server prunes unknown
// fields; the loader reports them in files), no defaults (the loader fills them in, so a stored
// resource keeps what its author wrote), and no anyOf: where the file takes two forms (one gateway
// or a list; a mask as an integer or hex text) the resource takes the list, or the first form.

import { z } from "zod";
import { configSchema } from "./schema.ts";

type Schema = { [key: string]: unknown };

function structural(node: Schema): Schema {
  let out: Schema = { ...node };
  const anyOf = out["anyOf"] as Schema[] | undefined;
  if (anyOf !== undefined) {
    const { anyOf: _, ...rest } = out;
    out = { ...rest, ...(anyOf.find((s) => s["type"] === "array") ?? anyOf[0]) };
  }
  delete out["additionalProperties"];
  delete out["default"];
  const properties = out["properties"] as Record<string, Schema> | undefined;
  if (properties !== undefined)
    out["properties"] = Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, structural(v)]));
  const items = out["items"] as Schema | undefined;
  if (items !== undefined) out["items"] = structural(items);
  return out;
}

export function configJsonSchema(): Record<string, unknown> {
  return structural(z.toJSONSchema(configSchema, { target: "openapi-3.0", io: "input" }) as Schema);
}
