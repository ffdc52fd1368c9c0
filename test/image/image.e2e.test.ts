// End-to-end with the agent's image (make image): the lab's case 3 node driven by the agent running
// in a container with the DaemonSet's security settings (root, every capability dropped but
// NET_ADMIN, read-only root filesystem, no privilege escalation, state on a host directory, the
// node's /proc/sys/net mounted for --proc-sys). Then a rolling restart under traffic, and
// --cleanup-on-exit back to the node's starting dump.
//
// The runtime: podman with runc (Debian packages, installed here when missing), every byte it stores
// in a temporary directory (--root, --runroot, --tmpdir, runc's --root), no network of its own (the
// container joins the lab node's namespace), no daemon. What it leaves on the host otherwise (its
// cgroup directories, containers/image's blob cache) is removed afterwards; the host's sysctls are
// checked unchanged.

import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { runTool } from "../../src/adapters/exec.ts";
import { compareSnapshots, describeDifference, snapshot, type Snapshot } from "../../src/lab/snapshot.ts";
import { IPV4, POD_PORT, poolOf, type LabSpec } from "../../src/lab/spec.ts";
import { labConfigText } from "../../src/lab/symroute.ts";
import { buildTopology, newPrefix, type Topology } from "../../src/lab/topology.ts";
import { metricValue, nsGet, pollUntil } from "../agent/support/agent-process.ts";
import { e2eUnavailable, REPO } from "../support/netns.ts";

const skip = e2eUnavailable();
const IMAGE = `ghcr.io/symroute/symroute:${(JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version}`;
const ARCHIVE = join(REPO, "dist/symroute-image.tar");
const SPEC: LabSpec = { case: 3, kubeProxy: "iptables", dualStack: false, firewall: "nftables" };
const LB = poolOf(3, IPV4).lbAddress;
const HOST_SYSCTLS = ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv4.conf.all.rp_filter"];

/** Installs what is missing (the test's own runtime and image builder), as `make image-deps` does. */
async function installTools(): Promise<void> {
  const missingPackages = ["mmdebstrap", "podman", "runc"].filter(
    (tool) => !existsSync(`/usr/bin/${tool}`) && !existsSync(`/usr/sbin/${tool}`),
  );
  if (missingPackages.length === 0) return;
  await runTool("apt-get", ["update", "-qq"]);
  await runTool("apt-get", [
    "install",
    "-y",
    "-qq",
    "--no-install-recommends",
    "-o",
    "DPkg::Lock::Timeout=600",
    ...missingPackages,
  ]);
}

async function hostSysctls(): Promise<string> {
  return (await runTool("sysctl", HOST_SYSCTLS)).stdout;
}

describe("the agent's image (make image) on a lab node", { skip, timeout: 900_000 }, () => {
  const name = `symroute-image-e2e-${process.pid}`;
  const cgroupParent = `/${name}`;
  let dir = "";
  let topology: Topology | undefined;
  let nodeNs = "";
  let start: Snapshot = {};
  let hostBefore = "";
  let blobCacheExisted = true;
  let runcRootExisted = true;
  let buildNote = "";

  const podman = (args: readonly string[], allowFailure = false) =>
    runTool(
      "podman",
      [
        "--root",
        join(dir, "storage"),
        "--runroot",
        join(dir, "run"),
        "--tmpdir",
        join(dir, "tmp"),
        "--runtime",
        "runc",
        "--runtime-flag",
        `root=${join(dir, "runc")}`,
        // crun fails on this machine's hybrid cgroup hierarchy; runc with cgroupfs works.
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "none",
        ...args,
      ],
      { allowFailure },
    );

  /** The DaemonSet's container, as podman flags; `extra` are agent flags. */
  const runAgent = async (container: string, extra: readonly string[] = []): Promise<void> => {
    const result = await podman(
      [
        "run",
        "--detach",
        "--name",
        container,
        "--cgroup-parent",
        cgroupParent,
        "--network",
        `ns:/var/run/netns/${nodeNs}`,
        "--user",
        "0:0",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "NET_ADMIN",
        "--security-opt",
        "no-new-privileges",
        "--read-only",
        "--memory",
        "256m",
        // podman's default ulimits are above what root may set here (no CAP_SYS_RESOURCE).
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=4096:4096",
        "--volume",
        `${join(dir, "config")}:/etc/symroute:ro`,
        "--volume",
        `${join(dir, "state")}:/var/lib/symroute`,
        // /proc/sys/net shows the netns of whoever reads it: the node's, from inside the container.
        "--volume",
        "/proc/sys/net:/host/proc/sys/net",
        // As the DaemonSet: the host's bpffs, read only, for the eBPF datapath detection.
        "--volume",
        "/sys/fs/bpf:/sys/fs/bpf:ro",
        IMAGE,
        "agent",
        "--config=/etc/symroute/config.yaml",
        "--state-dir=/var/lib/symroute",
        "--proc-sys=/host/proc/sys",
        "--listen=127.0.0.1:9473",
        ...extra,
      ],
      true,
    );
    assert.equal(result.code, 0, `podman run: ${result.stderr}`);
  };
  const logs = async (container: string) => {
    const r = await podman(["logs", container], true);
    return `${r.stdout}${r.stderr}`;
  };
  const ready = (container: string) =>
    pollUntil(
      `${container} ready (/readyz 200)`,
      async () => {
        const state = await podman(["inspect", "--format", "{{.State.Status}}", container], true);
        if (state.stdout.trim() === "exited")
          throw new Error(`${container} exited:\n${await logs(container)}`);
        return nsGet(nodeNs, "http://127.0.0.1:9473/readyz").status === 200 ? true : undefined;
      },
      60_000,
      100,
    );
  const stop = async (container: string): Promise<number> => {
    // SIGTERM, as the kubelet sends; the agent stops within the grace period.
    await podman(["stop", "--time", "30", container]);
    const code = Number(
      (await podman(["inspect", "--format", "{{.State.ExitCode}}", container])).stdout.trim(),
    );
    await podman(["rm", container]);
    return code;
  };
  const clientToLb = async (): Promise<{ ok: boolean; detail: string }> =>
    (topology as Topology)
      .probe("client")
      .request({ op: "connect", proto: "tcp", host: LB, port: POD_PORT, timeoutMs: 2_000 });

  before(async () => {
    hostBefore = await hostSysctls();
    await installTools();
    // make image (cached in .cache/image: seconds once the root filesystem exists).
    const cached =
      existsSync(join(REPO, ".cache/image")) && readdirSync(join(REPO, ".cache/image")).length > 0;
    const buildStarted = performance.now();
    const build = await runTool("bash", [join(REPO, "scripts/image/build.sh")], { allowFailure: true });
    buildNote = `make image took ${((performance.now() - buildStarted) / 1000).toFixed(1)} s (${cached ? "with" : "without"} .cache/image)`;
    assert.equal(build.code, 0, `make image failed:\n${build.stdout}\n${build.stderr}`);
    dir = await mkdtemp(join(tmpdir(), `${name}-`));
    for (const sub of ["storage", "run", "tmp", "runc", "config", "state"]) mkdirSync(join(dir, sub));
    blobCacheExisted = existsSync("/var/lib/containers");
    runcRootExisted = existsSync("/run/runc");
    const load = await podman(["load", "--quiet", "--input", ARCHIVE], true);
    assert.equal(load.code, 0, `podman load: ${load.stderr}`);
    assert.match(load.stdout, new RegExp(IMAGE.replace(/[.:/]/g, "\\$&")));

    topology = await buildTopology(SPEC, { prefix: newPrefix() });
    nodeNs = topology.namespaceOf("node");
    writeFileSync(join(dir, "config", "config.yaml"), labConfigText(SPEC));
    start = await snapshot(nodeNs);
  });

  after(async () => {
    if (dir !== "") {
      await podman(["rm", "--force", "--all"], true);
      await podman(["rmi", "--all", "--force"], true);
    }
    await topology?.teardown();
    // runc (cgroupfs) made a directory under every controller for --cgroup-parent: remove them.
    for (const controller of existsSync("/sys/fs/cgroup") ? readdirSync("/sys/fs/cgroup") : []) {
      const parent = join("/sys/fs/cgroup", controller, name);
      if (!existsSync(parent)) continue;
      for (const child of readdirSync(parent, { withFileTypes: true })) {
        if (child.isDirectory()) rmdirSync(join(parent, child.name));
      }
      rmdirSync(parent);
    }
    // containers/image keeps a blob cache at /var/lib/containers/cache for root, whatever --root says.
    if (!blobCacheExisted) rmSync("/var/lib/containers", { recursive: true, force: true });
    if (!runcRootExisted && existsSync("/run/runc") && readdirSync("/run/runc").length === 0)
      rmdirSync("/run/runc");
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
    assert.equal(await hostSysctls(), hostBefore, "the host's forwarding and rp_filter are unchanged");
  });

  it("the archive is an OCI layout podman loads, with only what the agent needs", async (t) => {
    t.diagnostic(buildNote);
    t.diagnostic(
      `archive ${ARCHIVE.slice(REPO.length + 1)}: ${(statSync(ARCHIVE).size / 2 ** 20).toFixed(1)} MiB`,
    );
    const listing = (await runTool("tar", ["-tf", ARCHIVE])).stdout.split("\n");
    for (const f of ["./oci-layout", "./index.json", "./manifest.json"]) assert.ok(listing.includes(f), f);
    const probe = await podman(
      [
        "run",
        "--rm",
        "--cgroup-parent",
        cgroupParent,
        "--network",
        "none",
        "--read-only",
        "--entrypoint",
        "sh",
      ]
        .concat(["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", IMAGE])
        .concat([
          "-c",
          "node --version; for t in ip nft iptables conntrack; do command -v $t; done; test ! -e /usr/bin/apt && echo no-apt; test -f /app/docs/config.md && echo docs; symroute --version >/dev/null && command -v symroute",
        ]),
      true,
    );
    assert.equal(probe.code, 0, probe.stderr);
    const [nodeVersion, ...rest] = probe.stdout.trim().split("\n");
    assert.match(nodeVersion ?? "", /^v20\./);
    assert.deepEqual(rest, [
      "/usr/sbin/ip",
      "/usr/sbin/nft",
      "/usr/sbin/iptables",
      "/usr/sbin/conntrack",
      "no-apt",
      "docs", // the page an invalid config's hint names
      "/usr/local/bin/symroute", // `kubectl exec ... -- symroute plan` (docs/kubernetes.md)
    ]);
  });

  it("drives the case 3 node: client → LB broken before, works after convergence; /metrics answers", async (t) => {
    const before = await clientToLb();
    assert.equal(
      before.ok,
      false,
      `without symroute the reply leaves by the wrong gateway: ${before.detail}`,
    );

    await runAgent("agent-a");
    await ready("agent-a");
    const after = await clientToLb();
    assert.ok(
      after.ok,
      `client → ${LB}:${POD_PORT} after convergence: ${after.detail}\n${await logs("agent-a")}`,
    );

    const metrics = nsGet(nodeNs, "http://127.0.0.1:9473/metrics");
    assert.equal(metrics.status, 200);
    assert.equal(metricValue(metrics.body, "symroute_converged"), 1);
    assert.ok((metricValue(metrics.body, "symroute_owned_objects") ?? 0) > 0);
    // The agent changed the node's namespace, not the host's, and only through NET_ADMIN.
    const rules = (await runTool("ip", ["-n", nodeNs, "-j", "rule", "show"])).stdout;
    assert.match(rules, /"fwmark"/);
    const pid = (await podman(["inspect", "--format", "{{.State.Pid}}", "agent-a"])).stdout.trim();
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
    const capEff = /^CapEff:\s+([0-9a-f]+)/m.exec(status)?.[1];
    assert.equal(capEff, "0000000000001000", "CAP_NET_ADMIN (bit 12) and nothing else");
    t.diagnostic(`agent RSS in the image, converged: ${Math.round(rssKb / 1024)} MiB`);
  });

  it("a rolling restart under traffic drops nothing; --cleanup-on-exit restores the starting dump", async (t) => {
    // Traffic through the LB: one held connection, and a new connection every 20 ms.
    const traffic = spawn(
      "ip",
      [
        "netns",
        "exec",
        (topology as Topology).namespaceOf("client"),
        process.execPath,
        "--import",
        "tsx",
        join(REPO, "test/image/support/traffic.ts"),
        LB,
        String(POD_PORT),
        "20",
      ],
      { cwd: REPO, stdio: ["pipe", "pipe", "pipe"] },
    );
    let stderr = "";
    traffic.stderr.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
    const lines = createInterface({ input: traffic.stdout });
    const output: string[] = [];
    lines.on("line", (line) => output.push(line));
    const seen = (wanted: string) =>
      new Promise<void>((resolve, reject) => {
        lines.on("line", (line) => {
          if (line === wanted) resolve();
        });
        traffic.on("exit", (code) => reject(new Error(`traffic exited (${code}) early: ${stderr}`)));
      });
    const bothWork = seen("ready");
    const baselineDone = seen("ok 150");
    const finished = new Promise<void>((resolve) => traffic.on("exit", () => resolve()));
    await bothWork;
    // A baseline first, with the agent running and nothing restarted: 150 new connections, whose
    // gaps the restart's are compared with.
    await baselineDone;
    traffic.stdin.write("mark\n");

    // The rolling update: the old container gets SIGTERM (routing stays), then the new one starts.
    const restartStarted = performance.now();
    assert.equal(await stop("agent-a"), 0, "the agent exits 0 on SIGTERM");
    await runAgent("agent-b");
    await ready("agent-b");
    const restartMs = performance.now() - restartStarted;
    // The new agent found the node converged: its first reconcile changed nothing.
    const metrics = nsGet(nodeNs, "http://127.0.0.1:9473/metrics").body;
    assert.equal(metricValue(metrics, "symroute_changes_applied_total"), 0, await logs("agent-b"));
    const during = await clientToLb();
    assert.ok(during.ok, during.detail);

    traffic.stdin.end();
    await finished;
    const summary = JSON.parse(output.at(-1) ?? "{}") as {
      newOk: number;
      newFailed: string[];
      heldEchoes: number;
      heldFailure?: string;
      worstNewMs: number;
      worstGapMs: number;
      worstHeldMs: number;
      phases: { newOk: number; worstNewMs: number; worstGapMs: number; worstHeldMs: number }[];
    };
    assert.deepEqual(summary.newFailed, [], "no new connection failed during the restart");
    assert.equal(summary.heldFailure, undefined, "the held connection survived");
    assert.ok(summary.newOk > 10 && summary.heldEchoes > 10, JSON.stringify(summary));
    // Reported, not asserted (timings on a shared machine): the restart against the baseline.
    const figures = (p: (typeof summary.phases)[number] | undefined): string =>
      p === undefined
        ? "none"
        : `${p.newOk} new connections, worst gap ${p.worstGapMs.toFixed(1)} ms, slowest connection ` +
          `${p.worstNewMs.toFixed(1)} ms, slowest held echo ${p.worstHeldMs.toFixed(1)} ms`;
    t.diagnostic(
      `restart (stop + start + ready) ${Math.round(restartMs)} ms; a new connection every 20 ms, ` +
        `${summary.heldEchoes} echoes on the held one. Baseline: ${figures(summary.phases[0])}. ` +
        `During the restart: ${figures(summary.phases[1])}`,
    );

    // Uninstall: the agent run once with --cleanup-on-exit removes everything it owns on SIGTERM.
    assert.equal(await stop("agent-b"), 0);
    await runAgent("agent-cleanup", ["--cleanup-on-exit"]);
    await ready("agent-cleanup");
    assert.equal(await stop("agent-cleanup"), 0);
    const residue = compareSnapshots(start, await snapshot(nodeNs));
    assert.deepEqual(residue.map(describeDifference), [], "the node is back to its starting dump");
    const afterCleanup = await clientToLb();
    assert.equal(afterCleanup.ok, false, "and client → LB is broken again, as before symroute");
  });
});
