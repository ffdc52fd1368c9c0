// `plan --kubernetes` and `doctor --kubernetes` on a node: the real CLI in a fresh namespace reads
// the networks the cluster gives this node from a fake API server in that namespace (SymrouteNetworks
// naming MetalLB pools, L2Advertisements, the node's labels) with the agent's flags, plans exactly
// what `plan -c` plans for the same networks written in a file, and changes nothing. Before, plan
// and doctor took only -c FILE: `--kubernetes` was an unknown option (exit 1).

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createNode, e2eUnavailable, REPO, type Netns } from "../support/netns.ts";
import { PUBLIC_NETWORK_WITH_PODS } from "../support/config.ts";

const skip = e2eUnavailable();

const NETWORKS = "/apis/symroute.io/v1alpha1/symroutenetworks";
const POOLS = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools";
const L2ADS = "/apis/metallb.io/v1beta1/namespaces/metallb-system/l2advertisements";
const NODES = "/api/v1/nodes";

/** The cluster: `public` applies to node-a; `quiet`'s pool is announced from other nodes only; `edge` selects other nodes. */
const CLUSTER = {
  [NETWORKS]: [
    {
      metadata: { name: "public", generation: 1 },
      spec: { pools: { names: ["public"] }, gateway: ["1.2.3.1"], interface: "ext0" },
    },
    {
      metadata: { name: "quiet", generation: 1 },
      spec: { pools: { names: ["quiet"] }, gateway: ["5.6.7.1"], interface: "ext0" },
    },
    {
      metadata: { name: "edge", generation: 1 },
      spec: {
        addresses: ["9.9.9.0/24"],
        interface: "ext0",
        nodeSelector: { matchLabels: { "node-role.example.com/edge": "true" } },
      },
    },
  ],
  [POOLS]: [
    { metadata: { name: "public", namespace: "metallb-system" }, spec: { addresses: ["1.2.3.0/24"] } },
    { metadata: { name: "quiet", namespace: "metallb-system" }, spec: { addresses: ["5.6.7.0/24"] } },
  ],
  [L2ADS]: [
    {
      metadata: { name: "public", namespace: "metallb-system" },
      spec: { ipAddressPools: ["public"], interfaces: ["ext0"] },
    },
    {
      metadata: { name: "quiet", namespace: "metallb-system" },
      spec: { ipAddressPools: ["quiet"], nodeSelectors: [{ matchLabels: { zone: "b" } }] },
    },
  ],
  [NODES]: [{ metadata: { name: "node-a", labels: { zone: "a" } } }],
};

/** The agent's ConfigMap: global settings only, the networks come from the cluster. */
const GLOBALS = "podCIDRs: [10.112.0.0/12]\nnetworks: []\n";

const dir = mkdtempSync(join(tmpdir(), "symroute-kube-"));
chmodSync(dir, 0o755);
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
const GLOBALS_FILE = file("globals.yaml", GLOBALS);
const SAME_AS_FILE = file("public.yaml", PUBLIC_NETWORK_WITH_PODS);

/**
 * The fake API server inside the node's namespace (the CLI there reaches its 127.0.0.1 only), and a
 * kubeconfig for it. The server prints its port once it listens: no waiting on time.
 */
async function startCluster(t: TestContext, node: Netns, cluster: object = CLUSTER): Promise<string> {
  node.exec(["ip", "link", "set", "lo", "up"]);
  const collections = file(`cluster-${node.name}.json`, JSON.stringify(cluster));
  const child = spawn(
    "ip",
    [
      "netns",
      "exec",
      node.name,
      process.execPath,
      "--import",
      "tsx",
      join(REPO, "test/agent/support/fake-apiserver-main.ts"),
      collections,
    ],
    { cwd: REPO, stdio: ["ignore", "pipe", "inherit"] },
  );
  t.after(() => child.kill("SIGKILL"));
  const lines = createInterface({ input: child.stdout });
  const port = await new Promise<string>((resolve, reject) => {
    lines.once("line", resolve);
    child.once("exit", (code) => reject(new Error(`the fake API server exited (${code}) before listening`)));
  });
  return file(
    `kubeconfig-${node.name}.yaml`,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters: [{name: fake, cluster: {server: 'http://127.0.0.1:" +
        port +
        "', insecure-skip-tls-verify: true}}]",
      "users: [{name: agent, user: {token: test}}]",
      "contexts: [{name: fake, context: {cluster: fake, user: agent}}]",
      "current-context: fake",
      "",
    ].join("\n"),
  );
}

interface PlanJson {
  inSync: boolean;
  networks: { name: string; pools: string[]; interface: string; method: string; gateway?: string }[];
  changes: { text: string }[];
  cluster?: { node: string; networks: { name: string; state: string; reason?: string }[] };
  [field: string]: unknown;
}

test(
  "plan --kubernetes plans the networks the cluster gives this node, as plan -c plans them, and changes nothing",
  { skip },
  async (t) => {
    const node = createNode(t);
    const kubeconfig = await startCluster(t, node);
    const before = node.dump();
    const kube = [
      "plan",
      "--kubernetes",
      "--node-name",
      "node-a",
      "--kubeconfig",
      kubeconfig,
      "-c",
      GLOBALS_FILE,
    ];
    const r = node.symroute([...kube, "-o", "json"]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    const planned = JSON.parse(r.stdout) as PlanJson;
    assert.deepEqual(
      planned.networks.map((n) => [n.name, n.pools.join(","), n.interface, n.method]),
      [["public", "1.2.3.0/24", "ext0", "connmark"]],
    );
    assert.deepEqual(
      planned.cluster?.networks.map((n) => [n.name, n.state, n.reason]),
      [
        ["edge", "not-selected", undefined],
        ["public", "selected", undefined],
        ["quiet", "not-announced", "NotAnnounced"],
      ],
    );
    // The same shape as plan -c's JSON (plus `cluster`), and the same plan as for the file.
    const fromFile = node.symroute(["plan", "-c", SAME_AS_FILE, "-o", "json"]);
    assert.equal(fromFile.code, 2, fromFile.stderr);
    const filePlan = JSON.parse(fromFile.stdout) as PlanJson;
    assert.deepEqual(Object.keys(planned), [...Object.keys(filePlan), "cluster"]);
    const { cluster: _cluster, ...rest } = planned;
    assert.deepEqual(rest, filePlan);
    // Text: the cluster's verdicts under the title, then the plan.
    const text = node.symroute([...kube]);
    assert.equal(text.code, 2, text.stderr);
    assert.match(
      text.stdout,
      /cluster: node node-a, http:\/\/127\.0\.0\.1:\d+ \(from --kubeconfig .*\): 3 SymrouteNetworks/,
    );
    assert.match(text.stdout, /quiet: not-announced \(NotAnnounced\): /);
    assert.match(text.stdout, /public IPv4 1\.2\.3\.0\/24 on ext0: policy-routing/);
    assert.equal(node.dump(), before, "plan --kubernetes changed the node");
    // The agent's environment variable names the node, as in the DaemonSet.
    const env = node.symroute(["plan", "--kubernetes", "--kubeconfig", kubeconfig, "-c", GLOBALS_FILE], {
      NODE_NAME: "node-a",
    });
    assert.equal(env.code, 2, env.stderr);
    // Once the node runs what the file says, the cluster's plan is in sync too: the same configuration.
    assert.equal(node.symroute(["apply", "-c", SAME_AS_FILE]).code, 0);
    const synced = node.symroute([...kube]);
    assert.equal(synced.code, 0, synced.stdout + synced.stderr);
    assert.match(synced.stdout, /In sync: nothing to change\./);
  },
);

test(
  "doctor --kubernetes diagnoses the cluster's networks for this node, as doctor -c does",
  { skip },
  async (t) => {
    const node = createNode(t);
    const kubeconfig = await startCluster(t, node);
    const kube = [
      "doctor",
      "--kubernetes",
      "--node-name",
      "node-a",
      "--kubeconfig",
      kubeconfig,
      "-c",
      GLOBALS_FILE,
    ];
    const before = node.symroute([...kube, "-o", "json"]);
    assert.equal(before.code, 3, before.stdout + before.stderr);
    const findings = (
      JSON.parse(before.stdout) as { findings: { network: string; ok: boolean; fix?: string }[] }
    ).findings;
    assert.ok(findings.some((f) => f.network === "public" && !f.ok));
    assert.match(
      findings.find((f) => f.network === "*")?.fix ?? "",
      /^the agent \(`symroute agent --kubernetes .*`\) converges this node: if it runs, its log and the SymrouteNetworks' status/,
    );
    // The fix names what converges a Kubernetes node: the agent, with the flags given.
    assert.ok(
      findings.some((f) => f.fix?.includes(`symroute agent --kubernetes -c ${GLOBALS_FILE}`) === true),
      JSON.stringify(findings, null, 2),
    );
    assert.equal(node.symroute(["apply", "-c", SAME_AS_FILE]).code, 0);
    const kubeAfter = node.symroute([...kube, "-o", "json"]);
    const fileAfter = node.symroute(["doctor", "-c", SAME_AS_FILE, "-o", "json"]);
    assert.equal(kubeAfter.code, fileAfter.code, kubeAfter.stdout);
    const paths = (out: string) =>
      (JSON.parse(out) as { findings: { network: string; path: string; ok: boolean }[] }).findings.map(
        (f) => [f.network, f.path, f.ok],
      );
    assert.deepEqual(paths(kubeAfter.stdout), paths(fileAfter.stdout));
  },
);

test("plan --kubernetes: usage errors and a node the cluster does not know (exit 1)", { skip }, async (t) => {
  const node = createNode(t);
  const kubeconfig = await startCluster(t, node);
  const neither = node.symroute(["plan", "-o", "json"]);
  assert.equal(neither.code, 1);
  assert.match(
    (JSON.parse(neither.stdout) as { error: { message: string } }).error.message,
    /required option '-c, --config <file>' not specified \(or --kubernetes\)/,
  );
  const noName = node.symroute(["plan", "--kubernetes", "--kubeconfig", kubeconfig], { NODE_NAME: "" });
  assert.equal(noName.code, 1);
  assert.match(noName.stderr, /--kubernetes needs --node-name \(or the NODE_NAME environment variable\)/);
  const stranger = node.symroute([
    "plan",
    "--kubernetes",
    "--node-name",
    "node-z",
    "--kubeconfig",
    kubeconfig,
  ]);
  assert.equal(stranger.code, 1);
  assert.match(stranger.stderr, /node "node-z" is not in the cluster at http:\/\/127\.0\.0\.1:\d+/);
  const missing = node.symroute([
    "plan",
    "--kubernetes",
    "--node-name",
    "node-a",
    "--kubeconfig",
    join(dir, "nope"),
  ]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /--kubeconfig .*nope: no such file/);
});
