import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { LineSplitter } from "../../src/agent/lines.ts";

/** `text` cut at `cuts` (positions, any order, repeats allowed) into chunks. */
function chunked(text: string, cuts: readonly number[]): string[] {
  const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
  const chunks: string[] = [];
  let from = 0;
  for (const c of [...at, text.length]) {
    chunks.push(text.slice(from, c));
    from = c;
  }
  return chunks;
}

test("a monitor's output gives the same lines however its chunks are cut", () => {
  fc.assert(
    fc.property(
      fc.array(fc.string({ unit: fc.constantFrom("a", "b", " ", "\n", "{", "é") }), { maxLength: 20 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      (parts, cuts) => {
        const text = parts.join("");
        const splitter = new LineSplitter();
        const lines = chunked(text, cuts).flatMap((chunk) => [...splitter.push(chunk)]);
        // Every line whose newline came; the unfinished rest waits for its end.
        assert.deepEqual(lines, text.split("\n").slice(0, -1));
      },
    ),
  );
});

test("a line written an element at a time is given once, whole", () => {
  const splitter = new LineSplitter();
  const got: string[] = [];
  for (const chunk of [
    "add rule inet symroute restore ",
    "0x1 : goto m0x1",
    ", ",
    "0x2 : goto m0x2 }\n# new",
    " generation 5\n",
  ])
    got.push(...splitter.push(chunk));
  assert.deepEqual(got, [
    "add rule inet symroute restore 0x1 : goto m0x1, 0x2 : goto m0x2 }",
    "# new generation 5",
  ]);
  assert.deepEqual(splitter.push(""), []);
});
