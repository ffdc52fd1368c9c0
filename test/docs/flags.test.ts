// The option tables of docs/agent.md ("Flags") and docs/explain.md ("Options") against the
// commands' real options: every flag the command takes has its row, no row names a flag it does not
// take, and a default the command declares is the one the row gives. README's command table may
// leave flags out, but every flag it shows must be its command's.

import { test } from "node:test";
import assert from "node:assert/strict";
import { tableAfter } from "../support/markdown-table.ts";
import { readFileSync } from "node:fs";
import type { Command } from "@commander-js/extra-typings";
import { createProgram } from "../../src/cli/program.ts";
import { registerAgent } from "../../src/cli/commands/agent.ts";
import { registerPlanApplyDelete } from "../../src/cli/commands/core.ts";
import { registerDoctor } from "../../src/cli/commands/doctor.ts";
import { PROTOCOLS, registerExplain } from "../../src/cli/commands/explain.ts";
import { registerLab } from "../../src/cli/commands/lab.ts";

const program = createProgram(["node", "symroute"]);
registerExplain(program as unknown as Command);
registerAgent(program as unknown as Command);

/** The rows of the first table after `heading` in `page`: each row's first cell and its other cells. */
function rows(page: string, heading: string): { flags: string[]; cells: string[] }[] {
  const doc = readFileSync(new URL(`../../docs/${page}`, import.meta.url), "utf8");
  const out: { flags: string[]; cells: string[] }[] = [];
  for (const cells of tableAfter(doc, heading, `docs/${page}`)) {
    // `--flag VALUE`, `-c, --config FILE`, `-o json`: the flags a row names, long or short.
    const flags = [...(cells[0] ?? "").matchAll(/(?<![\w-])(--[a-z][a-z-]*|-[a-z])\b/g)].map(
      (m) => m[1] ?? "",
    );
    if (flags.length > 0) out.push({ flags, cells: cells.slice(1) });
  }
  return out;
}

function check(commandName: string, page: string, heading: string): void {
  const command = (program.commands as unknown as Command[]).find((c) => c.name() === commandName);
  assert.ok(command !== undefined);
  const table = rows(page, heading);
  const documented = new Set(table.flatMap((r) => r.flags));
  const options = command.options.filter((o) => o.long !== "--help");
  for (const o of options)
    assert.ok(
      documented.has(o.long ?? "") || documented.has(o.short ?? ""),
      `docs/${page} ${heading}: no row for ${o.flags}`,
    );
  for (const flag of documented)
    assert.ok(
      options.some((o) => o.long === flag || o.short === flag),
      `docs/${page} ${heading}: ${flag} is not an option of ${commandName}`,
    );
  for (const option of command.options) {
    // The default as --help shows it: its description when it has one (`60s` for 60000 ms).
    const value: unknown = option.defaultValueDescription ?? option.defaultValue;
    if (typeof value !== "string" || option.long === undefined) continue;
    const row = table.find(
      (r) => r.flags.includes(option.long as string) || r.flags.includes(option.short ?? ""),
    );
    assert.ok(
      row?.cells.some((c) => c.includes(`\`${value}\``)),
      `docs/${page}: ${option.long}'s default is ${value}, its row says ${row?.cells.join(" | ")}`,
    );
  }
}

test("docs/agent.md's Flags table is `symroute agent`'s options, with their defaults", () => {
  check("agent", "agent.md", "## Flags");
});

test("docs/explain.md's Options table is `symroute explain`'s options", () => {
  check("explain", "explain.md", "## Options");
});

test("every flag README's command table shows is an option of its command", () => {
  const all = createProgram(["node", "symroute"]);
  for (const register of [
    registerPlanApplyDelete,
    registerExplain,
    registerDoctor,
    registerLab,
    registerAgent,
  ])
    register(all as unknown as Command);
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const rows = readme.split("\n").filter((l) => l.startsWith("| `symroute "));
  assert.ok(rows.length >= 8, `README's command rows: ${rows.length}`);
  for (const row of rows) {
    const usage = (row.split(/(?<!\\)\|/)[1] ?? "").trim();
    const name = /^`symroute ([a-z]+)/.exec(usage)?.[1] ?? "";
    const command = (all.commands as unknown as Command[]).find((c) => c.name() === name);
    assert.ok(command !== undefined, `README names a command ${name}`);
    // lab's flags belong to its subcommands.
    const options = [command, ...(command.commands as unknown as Command[])].flatMap((c) => c.options);
    for (const m of usage.matchAll(/(?<![\w-])(--[a-z][a-z-]*|-[a-z])\b/g)) {
      const flag = m[1] as string;
      assert.ok(
        options.some((o) => o.long === flag || o.short === flag),
        `README: symroute ${name} ${flag} is not an option of it`,
      );
    }
  }
});

test("README, docs/explain.md and explain --help name every protocol --proto takes, and no other", () => {
  const command = (program.commands as unknown as Command[]).find((c) => c.name() === "explain");
  const help = command?.options.find((o) => o.long === "--proto")?.description ?? "";
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const readmeRow = readme.split("\n").find((l) => l.startsWith("| `symroute explain")) ?? "";
  const docsRow =
    rows("explain.md", "## Options")
      .find((r) => r.flags.includes("--proto"))
      ?.cells.join(" ") ?? "";
  const names = Object.keys(PROTOCOLS);
  for (const [where, text] of [
    ["explain --help", help],
    ["README's explain row", readmeRow],
    ["docs/explain.md's --proto row", docsRow],
  ] as const) {
    // A choice list (`--proto tcp|udp`) would name only some: every name must be there.
    for (const name of names)
      assert.match(text, new RegExp(`(?<![\\w-])${name}(?![\\w-])`), `${where}: ${name}`);
    assert.doesNotMatch(text, /--proto [a-z-]+\\?\|/, `${where} lists --proto's choices as a subset`);
  }
});
