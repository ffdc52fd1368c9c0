// The real CLI's usage errors (a missing or unknown flag, a flag's bad value, an unknown command):
// exit 1, and with `-o json` the same `{"error": ...}` body on stdout as every other error, so a
// script reading JSON never gets help text instead. Each run is inside a namespace of its own with
// a state directory of its own, in case a usage error were ever not caught before the node is read.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, createBareNamespace, e2eUnavailable, run } from "../support/netns.ts";
import { usageErrorJson, wantsJson } from "../../src/cli/program.ts";

const skip = e2eUnavailable();

function cli(
  t: { after: (fn: () => void) => void },
  args: readonly string[],
  prepare?: (stateDir: string) => void,
) {
  const ns = createBareNamespace("sr-usage");
  const stateDir = mkdtempSync(join(tmpdir(), "symroute-usage-"));
  t.after(() => {
    ns.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  });
  const config = join(stateDir, "config.yaml");
  writeFileSync(config, "networks: []\n");
  prepare?.(stateDir);
  const argv = args.map((a) => (a === "CONFIG" ? config : a.replace(/^STATE(?=\/|$)/, stateDir)));
  return run(["ip", "netns", "exec", ns.name, process.execPath, CLI, ...argv]);
}

interface ErrorBody {
  error: { kind: string; message: string; details: string[]; hint?: string };
}

const cases: readonly { args: string[]; message: RegExp; hint: RegExp }[] = [
  {
    args: ["plan", "--state-dir", "STATE", "-o", "json"],
    message: /required option '-c, --config <file>' not specified/,
    hint: /symroute plan --help/,
  },
  {
    args: ["apply", "-c", "CONFIG", "--state-dir", "STATE", "--bogus", "--output=json"],
    message: /unknown option '--bogus'/,
    hint: /symroute apply --help/,
  },
  {
    args: ["delete", "--state-dir", "STATE", "--lock-wait", "soon", "-o", "json"],
    message: /--lock-wait takes a number of seconds, not "soon"/,
    hint: /symroute delete --help/,
  },
  { args: ["explain", "-o", "json"], message: /required option '--to <address>'/, hint: /explain --help/ },
  {
    args: ["doctor", "--state-dir", "STATE", "--output", "json"],
    message: /doctor needs the configuration/,
    hint: /symroute doctor -c FILE/,
  },
  { args: ["plann", "-o", "json"], message: /unknown command 'plann'/, hint: /Did you mean plan\?/ },
  // With --help it printed the program's help and exited 0: a script probing for the command took it for there.
  {
    args: ["validate", "--help", "-o", "json"],
    message: /unknown command 'validate'/,
    hint: /symroute --help/,
  },
];

for (const c of cases) {
  test(`-o json: a usage error is a JSON error body (${c.args.join(" ")})`, { skip }, (t) => {
    const r = cli(t, c.args);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const body = JSON.parse(r.stdout) as ErrorBody;
    assert.equal(body.error.kind, "invalid-argument");
    assert.match(body.error.message, c.message);
    assert.match(body.error.hint ?? "", c.hint);
    assert.deepEqual(body.error.details, []);
    assert.equal(r.stderr, "", "no help text after the JSON");
  });
}

test(
  "without -o json a usage error is one line and a hint naming the command's --help, not the whole help",
  { skip },
  (t) => {
    const r = cli(t, ["plan", "--state-dir", "STATE"]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.equal(
      r.stderr,
      "error (invalid-argument): required option '-c, --config <file>' not specified (or --kubernetes)\nhint: see `symroute plan --help`\n",
    );
    const unknown = cli(t, ["apply", "-c", "CONFIG", "--state-dir", "STATE", "--bogus"]);
    assert.equal(unknown.code, 1);
    assert.equal(
      unknown.stderr,
      "error (invalid-argument): unknown option '--bogus'\nhint: see `symroute apply --help`\n",
    );
    const suggested = cli(t, ["plann"]);
    assert.equal(
      suggested.stderr,
      "error (invalid-argument): unknown command 'plann'\nhint: Did you mean plan? (see `symroute --help`)\n",
    );
  },
);

test(
  "one style for every usage error: commander's and those a command finds in its options' values read together",
  { skip },
  (t) => {
    // Commander's (an option's bad value), and explain's own checks of its options: before, the
    // first printed `error: ...` with a hint and the others `error (invalid-argument): ...` with
    // none.
    const byCommander = cli(t, ["delete", "--state-dir", "STATE", "--lock-wait", "soon"]);
    assert.equal(byCommander.code, 1);
    assert.equal(
      byCommander.stderr,
      'error (invalid-argument): --lock-wait takes a number of seconds, not "soon"\nhint: see `symroute delete --help`\n',
    );
    const byExplain = cli(t, ["explain", "--to", "1.2.3.4", "--iif", "lo"]);
    assert.equal(byExplain.code, 1);
    assert.equal(
      byExplain.stderr,
      "error (invalid-argument): --iif needs --from: an arriving packet has a source address\nhint: see `symroute explain --help`\n",
    );
    const withHint = cli(t, ["explain", "--to", "1.2.3.4", "--dport", "80", "-o", "json"]);
    assert.equal(withHint.code, 1);
    assert.deepEqual(JSON.parse(withHint.stdout), {
      error: {
        kind: "invalid-argument",
        message: "--sport and --dport need --proto",
        details: [],
        hint: "add --proto tcp or --proto udp (see `symroute explain --help`)",
      },
    });
  },
);

test("a usage error of a lab subcommand names that subcommand's --help, in text and JSON", { skip }, (t) => {
  const text = cli(t, ["lab", "up", "--case", "7"]);
  assert.equal(text.code, 1);
  assert.equal(
    text.stderr,
    'error (invalid-argument): --case must be 1, 2, 3 or 4, not "7"\nhint: see `symroute lab up --help`\n',
  );
  // lab has no -o: asked for JSON anyway, stdout is one JSON document, nothing on stderr.
  const json = cli(t, ["lab", "down", "--all", "-o", "json"]);
  assert.equal(json.code, 1);
  assert.equal(json.stderr, "");
  const body = JSON.parse(json.stdout) as ErrorBody;
  assert.equal(body.error.message, "unknown option '-o'");
  assert.equal(body.error.hint, "see `symroute lab down --help`");
});

test(
  "--help after a command that does not exist is the unknown command's error, not the help (exit 1)",
  { skip },
  (t) => {
    for (const help of ["--help", "-h"]) {
      const r = cli(t, ["validate", help]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.equal(r.stdout, "");
      assert.match(r.stderr, /^error \(invalid-argument\): unknown command 'validate'\n/);
    }
    // The same one level down: lab's subcommands.
    const lab = cli(t, ["lab", "foo", "--help"]);
    assert.equal(lab.code, 1, lab.stdout + lab.stderr);
    assert.match(lab.stderr, /^error \(invalid-argument\): unknown command 'foo'\n/);
    // A command that exists still gets its help, and `help NAME` is commander's own.
    const plan = cli(t, ["plan", "--help"]);
    assert.equal(plan.code, 0);
    assert.match(plan.stdout, /^Usage: symroute plan/);
  },
);

test("wantsJson reads every spelling of -o json, and nothing after --", () => {
  for (const argv of [
    ["-o", "json"],
    ["--output", "json"],
    ["-ojson"],
    ["--output=json"],
    ["plan", "-o", "json"],
  ])
    assert.equal(wantsJson(argv), true, argv.join(" "));
  for (const argv of [["-o", "text"], ["-c", "json"], ["--", "-o", "json"], ["json"]])
    assert.equal(wantsJson(argv), false, argv.join(" "));
});

test("usageErrorJson turns commander's suggestion into the hint", () => {
  const body = JSON.parse(
    usageErrorJson("error: unknown command 'plann'\n(Did you mean plan?)\n", undefined),
  ) as ErrorBody;
  assert.deepEqual(body, {
    error: {
      kind: "invalid-argument",
      message: "unknown command 'plann'",
      details: [],
      hint: "Did you mean plan? (see `symroute --help`)",
    },
  });
});

for (const command of ["plan", "apply", "doctor", "agent"] as const) {
  test(
    `${command}: a configuration file that cannot be read names the errno and what to check`,
    { skip },
    (t) => {
      const missingFile = cli(t, [command, "-c", "STATE/nope.yaml", "--state-dir", "STATE"]);
      assert.equal(missingFile.code, 1, missingFile.stdout + missingFile.stderr);
      assert.match(
        missingFile.stderr,
        /error \(invalid-argument\): cannot read the configuration file \S+nope\.yaml: no such file or directory \(ENOENT\)\n/,
      );
      assert.match(missingFile.stderr, /hint: check the path given with -c\/--config/);
      const directory = cli(t, [command, "-c", "STATE", "--state-dir", "STATE"]);
      assert.equal(directory.code, 1, directory.stdout + directory.stderr);
      assert.match(
        directory.stderr,
        /cannot read the configuration file \S+: illegal operation on a directory \(EISDIR\)\n/,
      );
      assert.match(directory.stderr, /hint: -c\/--config takes a file, not a directory/);
    },
  );
}

// Only read-only commands here: before the fix an empty --state-dir put the state at `/`, and a
// failing test must not write there (test/cli/help.test.ts checks every command's parser).
for (const command of ["plan", "explain"] as const) {
  test(
    `${command}: an empty --state-dir is refused, not taken as / (an unset variable in a script)`,
    { skip },
    (t) => {
      const args = command === "explain" ? ["--to", "1.2.3.4"] : ["-c", "CONFIG"];
      const r = cli(t, [command, ...args, "--state-dir", ""]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /--state-dir needs a directory, not an empty string/);
    },
  );
}

test("a relative --state-dir is made absolute once: the state line names the whole path", { skip }, (t) => {
  const r = cli(t, ["plan", "-c", "CONFIG", "--state-dir", "relative-state", "-o", "json"]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const state = (JSON.parse(r.stdout) as { state: { file: string } }).state;
  assert.ok(state.file.startsWith(`${process.cwd()}/relative-state/netns-`), state.file);
});

test("delete -c with a broken configuration says that delete needs no -c", { skip }, (t) => {
  const r = cli(t, ["delete", "-c", "STATE/nope.yaml", "--state-dir", "STATE"]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(
    r.stderr,
    /hint: check the path given with -c\/--config; delete needs no -c: without it, it uses the settings the last apply recorded/,
  );
});

test("a command's option put before the command says where it goes", { skip }, (t) => {
  const text = cli(t, ["--state-dir", "STATE", "plan", "-c", "CONFIG"]);
  assert.equal(text.code, 1);
  assert.match(
    text.stderr,
    /^error \(invalid-argument\): unknown option '--state-dir'\nhint: options go after the command: symroute plan --state-dir \.\.\. \(see `symroute plan --help`\)\n$/,
  );
  const json = cli(t, ["-o", "json", "plan", "-c", "CONFIG"]);
  assert.equal(json.code, 1);
  assert.equal(
    (JSON.parse(json.stdout) as ErrorBody).error.hint,
    "options go after the command: symroute plan -o ... (see `symroute plan --help`)",
  );
  // An option no command has gets no such line.
  assert.doesNotMatch(cli(t, ["--bogus", "plan"]).stderr, /options go after/);
});

// Given without --kubernetes they were ignored: `plan -c FILE --node-name n1` answered for the file
// alone, as if the node's cluster networks had been asked for and there were none.
for (const args of [
  ["plan", "-c", "CONFIG", "--state-dir", "STATE", "--node-name", "n1"],
  ["doctor", "-c", "CONFIG", "--state-dir", "STATE", "--kubeconfig", "STATE/kubeconfig"],
  // --listen nope: before the fix the agent stopped there (exit 1, another message), not ran on.
  ["agent", "-c", "CONFIG", "--state-dir", "STATE", "--metallb-namespace", "lb", "--listen", "nope"],
]) {
  const flag = args.find((a) => a.startsWith("--") && !["--state-dir", "--listen"].includes(a)) ?? "";
  test(`${args[0]}: ${flag} without --kubernetes is a usage error naming both flags`, { skip }, (t) => {
    const text = cli(t, args);
    assert.equal(text.code, 1, text.stdout + text.stderr);
    assert.equal(
      text.stderr,
      `error (invalid-argument): ${flag} is used only with --kubernetes; add --kubernetes, or leave ${flag} out\nhint: see \`symroute ${args[0]} --help\`\n`,
    );
    if (args[0] === "agent") return;
    const json = cli(t, [...args, "-o", "json"]);
    assert.equal(json.code, 1, json.stdout + json.stderr);
    assert.equal((JSON.parse(json.stdout) as ErrorBody).error.kind, "invalid-argument");
  });
}

test(
  "NODE_NAME in the environment without --kubernetes is not an error (a DaemonSet sets it)",
  { skip },
  (t) => {
    const ns = createBareNamespace("sr-usage");
    const stateDir = mkdtempSync(join(tmpdir(), "symroute-usage-"));
    t.after(() => {
      ns.destroy();
      rmSync(stateDir, { recursive: true, force: true });
    });
    const config = join(stateDir, "config.yaml");
    writeFileSync(config, "networks: []\n");
    const r = run(
      ["ip", "netns", "exec", ns.name, process.execPath, CLI, "plan", "-c", config, "--state-dir", stateDir],
      { env: { NODE_NAME: "n1" } },
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
  },
);

test(
  "plan --kubernetes with an API server it cannot reach names the server, the cause and what to check",
  { skip },
  (t) => {
    const kubeconfig = [
      "apiVersion: v1",
      "kind: Config",
      'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]',
      "contexts: [{name: c, context: {cluster: c, user: u}}]",
      "current-context: c",
      "users: [{name: u, user: {token: x}}]",
    ].join("\n");
    const r = cli(
      t,
      [
        "plan",
        "--kubernetes",
        "--node-name",
        "n1",
        "--kubeconfig",
        "STATE/kubeconfig",
        "--state-dir",
        "STATE",
        "-o",
        "json",
      ],
      (stateDir) => writeFileSync(join(stateDir, "kubeconfig"), `${kubeconfig}\n`),
    );
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const { error } = JSON.parse(r.stdout) as ErrorBody;
    assert.equal(error.kind, "dependency");
    assert.match(
      error.message,
      /^cannot reach the Kubernetes API at https:\/\/127\.0\.0\.1:1 .*: request to https:\/\/127\.0\.0\.1:1\/apis\/\S+ failed/,
    );
    assert.match(
      error.hint ?? "",
      /^check the API server's address, https:\/\/127\.0\.0\.1:1 \(from --kubeconfig \S+\), and that this node reaches it/,
    );
  },
);
