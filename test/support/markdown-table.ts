// The docs tests read Markdown tables: the rows of the first table after a heading line.

import assert from "node:assert/strict";

/** Each row's cells (trimmed), header and separator rows included, of the first table after `heading`. */
export function tableAfter(doc: string, heading: string, where: string): string[][] {
  const start = doc.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `${where} has the heading ${heading}`);
  const rows: string[][] = [];
  for (const line of doc.slice(start + heading.length + 2).split("\n")) {
    if (!line.startsWith("|")) {
      if (rows.length > 0) break;
      continue;
    }
    rows.push(
      line
        .split("|")
        .slice(1, -1)
        .map((c) => c.trim()),
    );
  }
  return rows;
}
