// Every command's --help, as a newcomer reads it: it states its exit codes, the same ones the README's
// command table gives; every --state-dir says its default; every -o says its formats.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { Command } from "@commander-js/extra-typings";
import { createProgram } from "../../src/cli/program.ts";
import { registerAgent } from "../../src/cli/commands/agent.ts";
import { registerPlanApplyDelete } from "../../src/cli/commands/core.ts";
import { registerDoctor } from "../../src/cli/commands/doctor.ts";
import { registerExplain } from "../../src/cli/commands/explain.ts";
import { registerLab } from "../../src/cli/commands/lab.ts";

const program = createProgram(["node", "symroute"]);
for (const register of [registerPlanApplyDelete, registerExplain, registerDoctor, registerLab, registerAgent])
  register(program as unknown as Command);

function helpOf(command: Command): string {
  let help = "";
  command.configureOutput({ writeOut: (text) => (help += text) });
  command.outputHelp();
  return help;
}

/** The exit codes a text names after "Exit codes:" (to the end of that paragraph). */
function exitCodes(text: string): number[] {
  const start = text.indexOf("Exit codes:");
  assert.ok(start >= 0, text);
  const paragraph = text.slice(start).split(/\n\s*\n/)[0] ?? "";
  return [...new Set([...paragraph.matchAll(/\b(\d+)\b/g)].map((m) => Number(m[1])))].sort((a, b) => a - b);
}

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

/** The exit codes column of the README's command table, by command name. */
function readmeExitCodes(name: string): number[] {
  const row = readme.split("\n").find((l) => l.startsWith(`| \`symroute ${name}`));
  assert.ok(row !== undefined, `README has a row for ${name}`);
  const cells = row.split(/(?<!\\)\|/).map((c) => c.trim());
  const codes = cells[cells.length - 2] ?? "";
  return [...new Set([...codes.matchAll(/\b(\d+)\b/g)].map((m) => Number(m[1])))].sort((a, b) => a - b);
}

const commands = program.commands as unknown as Command[];

for (const command of commands) {
  const name = command.name();
  if (name === "help") continue;
  test(`symroute ${name} --help states the exit codes the README's table gives`, () => {
    const help = helpOf(command);
    assert.deepEqual(exitCodes(help), readmeExitCodes(name), help);
  });
}

test("every subcommand's --help states its exit codes too, among those of its command's README row", () => {
  for (const parent of commands.filter((c) => c.commands.length > 0)) {
    for (const command of parent.commands as unknown as Command[]) {
      if (command.name() === "help") continue;
      const help = helpOf(command);
      const allowed = readmeExitCodes(parent.name());
      for (const code of exitCodes(help))
        assert.ok(allowed.includes(code), `${parent.name()} ${command.name()}: exit code ${code}\n${help}`);
    }
  }
});

test("the command list of `symroute --help` names no exit codes: they are in each command's own help", () => {
  const help = helpOf(program as unknown as Command);
  const list = help.slice(help.indexOf("Commands:"), help.lastIndexOf("\nExit codes:"));
  assert.doesNotMatch(list, /Exit codes/, list);
});

test("every --state-dir says where it defaults to, every -o which formats it takes", () => {
  const leaves = commands.flatMap((c) =>
    c.commands.length === 0 ? [c] : (c.commands as unknown as Command[]),
  );
  let seen = 0;
  for (const command of leaves) {
    for (const option of command.options) {
      if (option.long === "--state-dir") {
        seen++;
        assert.match(option.description, /default/, `${command.name()} --state-dir: ${option.description}`);
      }
      if (option.long === "--output") assert.match(option.description, /json/, command.name());
    }
  }
  assert.ok(seen >= 7, `--state-dir on plan, apply, delete, explain, snapshot, doctor, agent (${seen})`);
});

test("every --state-dir refuses an empty path (it would put the state at /) and makes a relative one absolute", () => {
  const leaves = commands.flatMap((c) =>
    c.commands.length === 0 ? [c] : (c.commands as unknown as Command[]),
  );
  const parsers = leaves.flatMap((c) =>
    c.options.filter((o) => o.long === "--state-dir").map((o) => ({ name: c.name(), parse: o.parseArg })),
  );
  assert.equal(parsers.length, 7, parsers.map((p) => p.name).join(", "));
  for (const { name, parse } of parsers) {
    assert.ok(parse !== undefined, `${name} --state-dir has a parser`);
    for (const empty of ["", "  "])
      assert.throws(
        () => parse(empty, undefined),
        /--state-dir needs a directory, not an empty string/,
        name,
      );
    assert.equal(parse("some/dir", undefined), `${process.cwd()}/some/dir`, name);
    assert.equal(parse("/var/lib/x", undefined), "/var/lib/x", name);
  }
});

test("snapshot's -o takes json only: text would be printed as JSON all the same", () => {
  const snapshot = commands.find((c) => c.name() === "snapshot");
  const parse = snapshot?.options.find((o) => o.long === "--output")?.parseArg;
  assert.ok(parse !== undefined);
  assert.equal(parse("json", undefined), "json");
  assert.throws(() => parse("text", undefined), /snapshot prints JSON only/);
});

test("every option parser refuses a bad value as a usage error, never with a stack trace", () => {
  const all = (c: Command): Command[] => [c, ...(c.commands as unknown as Command[]).flatMap(all)];
  let checked = 0;
  for (const command of all(program as unknown as Command)) {
    for (const option of command.options) {
      if (option.parseArg === undefined) continue;
      for (const bad of ["x-bogus", "-1", "99999999999", ""]) {
        checked++;
        try {
          option.parseArg(bad, undefined);
        } catch (error) {
          assert.equal(
            (error as { code?: string }).code,
            "commander.invalidArgument",
            `${command.name()} ${option.long} ${JSON.stringify(bad)}: ${String(error)}`,
          );
        }
      }
    }
  }
  assert.ok(checked > 20, `${checked}`);
});
