// The agent end to end in a fresh network namespace: converge at start, drift repaired, config
// reload, one agent per namespace, SIGTERM leaves routing in place, --cleanup-on-exit removes it.

import { strict as assert } from "node:assert";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { createNode, e2eUnavailable, must, run } from "../support/netns.ts";
import { PUBLIC_NETWORK_WITH_PODS } from "../support/config.ts";
import { metricValue, nsGet, pollUntil, startAgentIn, type AgentProcess } from "./support/agent-process.ts";

const skip = e2eUnavailable();
const URL_BASE = "http://127.0.0.1:9473";

const ONE_NETWORK = PUBLIC_NETWORK_WITH_PODS;
const TWO_NETWORKS = `${ONE_NETWORK}  - name: second
    addresses: [198.51.100.0/24]
    interface: ext1
    gateway: 198.51.100.1
`;

interface RuleJson {
  priority?: number;
  protocol?: string;
}
/** Rules symroute owns: its proto (201 by default) in its priority band. */
function ownedRules(ns: string): number[] {
  const rules = JSON.parse(must(["ip", "netns", "exec", ns, "ip", "-j", "rule", "show"])) as RuleJson[];
  return rules
    .filter((r) => r.priority !== undefined && r.priority >= 1000 && r.priority <= 1999)
    .map((r) => r.priority as number);
}

const ready = (ns: string): Promise<true> =>
  pollUntil(
    `${ns} /readyz`,
    () => (nsGet(ns, `${URL_BASE}/readyz`).status === 200 ? true : undefined),
    30_000,
  );

const metric = (ns: string, name: string): number | undefined =>
  metricValue(nsGet(ns, `${URL_BASE}/metrics`).body, name);

test(
  "agent: converge, repair drift, reload config, refuse a second agent, SIGTERM keeps routing",
  { skip },
  async (t) => {
    const node = createNode(t);
    run(["ip", "-n", node.name, "link", "add", "ext1", "type", "veth", "peer", "name", "ext1p"]);
    run(["ip", "-n", node.name, "link", "set", "ext1", "up"]);
    const config = join(node.stateDir, "agent.yaml");
    writeFileSync(config, ONE_NETWORK);
    const args = ["-c", config, "--state-dir", node.stateDir, "--resync-interval", "5m"];
    const agents: AgentProcess[] = [];
    t.after(() => {
      for (const a of agents) if (a.child.exitCode === null) a.child.kill("SIGKILL");
    });
    const agent = startAgentIn(node.name, args);
    agents.push(agent);
    try {
      await ready(node.name);
    } catch (error) {
      throw new Error(`${String(error)}\nagent output:\n${agent.output()}`);
    }

    await t.test("converged at start; the endpoints are read-only", () => {
      assert.ok(ownedRules(node.name).length > 0, "owned rules exist");
      assert.equal(nsGet(node.name, `${URL_BASE}/healthz`).status, 200);
      const post = run([
        "ip",
        "netns",
        "exec",
        node.name,
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        `${URL_BASE}/readyz`,
      ]);
      assert.equal(post.stdout, "405");
      assert.equal(metric(node.name, "symroute_config_loaded"), 1);
      assert.ok((metric(node.name, "symroute_owned_objects") ?? 0) > 0);
    });

    await t.test("a rule deleted by hand is put back, and counted as a drift repair", async () => {
      const before = metric(node.name, "symroute_drift_repairs_total") ?? 0;
      const rules = ownedRules(node.name);
      const victim = rules[0] as number;
      const started = Date.now();
      assert.equal(
        run(["ip", "netns", "exec", node.name, "ip", "rule", "del", "priority", String(victim)]).code,
        0,
      );
      await pollUntil(
        "the rule to come back",
        () => (ownedRules(node.name).includes(victim) ? true : undefined),
        10_000,
        20,
      );
      t.diagnostic(`rule ${victim} repaired after ${Date.now() - started} ms`);
      const after = await pollUntil("the drift metric", () => {
        const v = metric(node.name, "symroute_drift_repairs_total") ?? 0;
        return v > before ? v : undefined;
      });
      assert.ok(after > before);
      // The log names what was repaired, the way plan prints it. The metric is counted before the
      // log line is written, and the line crosses a pipe: wait for it rather than read once.
      const named = (l: { repaired?: string[] }): boolean =>
        (l.repaired ?? []).some((c) => new RegExp(`^ip rule add priority ${victim} `).test(c));
      await pollUntil("the drift-repair log line naming the rule", () =>
        agent
          .output()
          .split("\n")
          .filter((l) => l.includes('"drift repaired"'))
          .map((l) => JSON.parse(l) as { repaired?: string[] })
          .some(named)
          ? true
          : undefined,
      );
    });

    await t.test("symroute's nft table deleted by hand is put back before the resync", async () => {
      const hasTable = (): boolean =>
        run(["ip", "netns", "exec", node.name, "nft", "list", "table", "inet", "symroute"]).code === 0;
      assert.ok(hasTable());
      const started = Date.now();
      assert.equal(
        run(["ip", "netns", "exec", node.name, "nft", "delete", "table", "inet", "symroute"]).code,
        0,
      );
      // The resync interval is 5 minutes: only the firewall monitor can bring it back this soon.
      await pollUntil("the nft table to come back", () => (hasTable() ? true : undefined), 10_000, 20);
      t.diagnostic(`nft table repaired after ${Date.now() - started} ms`);
    });

    await t.test("/metrics shows reconcile durations, events received and coalesced, memory", () => {
      const text = nsGet(node.name, `${URL_BASE}/metrics`).body;
      // The repairs above ran because the kernel monitors reported events.
      assert.ok((metric(node.name, 'symroute_events_received_total{source="kernel"}') ?? 0) > 0, text);
      assert.match(text, /^# TYPE symroute_events_coalesced_total counter$/m);
      assert.match(text, /^# TYPE symroute_reconcile_duration_seconds histogram$/m);
      assert.match(text, /^symroute_reconcile_duration_seconds_bucket\{le="\+Inf"\} [1-9]/m);
      assert.ok((metric(node.name, "process_resident_memory_bytes") ?? 0) > 10 * 2 ** 20, text);
      assert.ok((metric(node.name, "nodejs_heap_size_used_bytes") ?? 0) > 0, text);
    });

    await t.test("conf.all's rp_filter reset by hand is put back before the resync", async () => {
      const allRpFilter = "/proc/sys/net/ipv4/conf/all/rp_filter";
      const read = (): string => must(["ip", "netns", "exec", node.name, "cat", allRpFilter]).trim();
      assert.equal(read(), "0");
      const started = Date.now();
      // As `sysctl --system` would: every request on ext0 (no address) is dropped until it is 0.
      assert.equal(
        run(["ip", "netns", "exec", node.name, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"]).code,
        0,
      );
      // The resync interval is 5 minutes: only the kernel's netconf event can bring it back this soon
      // (the reconciles the repairs above caused are over: /metrics was read in between).
      await pollUntil("conf.all.rp_filter back to 0", () => (read() === "0" ? true : undefined), 10_000, 20);
      t.diagnostic(`conf.all.rp_filter repaired after ${Date.now() - started} ms`);
    });

    await t.test(
      "eth0's rp_filter, which symroute raised when it lowered conf.all, lowered by hand is put back before the resync",
      async () => {
        // eth0 is in no network: symroute owns its rp_filter only because lowering conf.all would
        // otherwise lower eth0's effective value (KERNEL-FACTS 5). Its netconf event must count too.
        const eth0RpFilter = "/proc/sys/net/ipv4/conf/eth0/rp_filter";
        const read = (): string => must(["ip", "netns", "exec", node.name, "cat", eth0RpFilter]).trim();
        const repairs = (): number =>
          agent
            .output()
            .split("\n")
            .filter((l) => l.includes('"drift repaired"') && l.includes("net.ipv4.conf.eth0.rp_filter"))
            .length;
        assert.equal(read(), "1");
        // Twice: a reconcile still due from the repairs above may put the first change back whatever
        // the filter says; once that repair is logged, only the netconf event can bring a reconcile
        // (the repair's own write is an eth0 event too), and the resync is 5 minutes away.
        for (const round of [1, 2]) {
          const before = repairs();
          const started = Date.now();
          assert.equal(
            run(["ip", "netns", "exec", node.name, "sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=0"]).code,
            0,
          );
          await pollUntil(
            `eth0's rp_filter repaired (round ${round})`,
            () => (read() === "1" && repairs() > before ? true : undefined),
            10_000,
            20,
          );
          t.diagnostic(`eth0's rp_filter repaired after ${Date.now() - started} ms (round ${round})`);
        }
      },
    );

    await t.test(
      "a pod's veth coming and going costs no reconcile; the node's own links still do",
      async () => {
        const inside = (...argv: string[]) => run(["ip", "netns", "exec", node.name, ...argv]);
        const counts = () => ({
          ignored: metric(node.name, 'symroute_events_ignored_total{source="kernel"}') ?? 0,
          received: metric(node.name, 'symroute_events_received_total{source="kernel"}') ?? 0,
        });
        const before = counts();
        assert.equal(
          inside("ip", "link", "add", "podtest0", "type", "veth", "peer", "name", "podtest1").code,
          0,
        );
        assert.equal(inside("ip", "link", "set", "podtest0", "up").code, 0);
        assert.equal(inside("ip", "addr", "add", "10.250.0.1/30", "dev", "podtest0").code, 0);
        assert.equal(inside("ip", "link", "del", "podtest0").code, 0);
        // The link's deletion is its last event: once it is counted, the veth's events all arrived.
        await pollUntil("the veth's events counted as ignored", () =>
          counts().ignored >= before.ignored + 4 ? true : undefined,
        );
        assert.equal(counts().received, before.received, "no reconcile was asked for");
        // Control: an address on the network's own interface is an event that counts.
        assert.equal(inside("ip", "addr", "add", "10.251.0.1/32", "dev", "ext0").code, 0);
        await pollUntil("ext0's event received", () =>
          counts().received > before.received ? true : undefined,
        );
        assert.equal(inside("ip", "addr", "del", "10.251.0.1/32", "dev", "ext0").code, 0);
      },
    );

    await t.test("a rule of symroute's changed under the same comment is put back", async () => {
      const listing = run([
        "ip",
        "netns",
        "exec",
        node.name,
        "nft",
        "-a",
        "list",
        "table",
        "inet",
        "symroute",
      ]).stdout;
      let chain = "";
      let target: { chain: string; handle: string; comment: string; original: string } | undefined;
      for (const line of listing.split("\n")) {
        const c = /^\s*chain (\S+) \{/.exec(line);
        if (c !== null) chain = c[1] as string;
        const m = /^\s*(meta mark set .*) comment "([^"]*)" # handle (\d+)/.exec(line);
        if (m !== null && target === undefined)
          target = { chain, handle: m[3] as string, comment: m[2] as string, original: m[1] as string };
      }
      assert.ok(target, listing);
      const { chain: ch, handle, comment, original } = target;
      const replaced = run([
        ...["ip", "netns", "exec", node.name, "nft", "replace", "rule", "inet", "symroute", ch],
        ...["handle", handle, "meta", "mark", "set", "0x2", "comment", `"${comment}"`],
      ]);
      assert.equal(replaced.code, 0, replaced.stderr);
      // The resync interval is 5 minutes: the firewall monitor's event and the content comparison
      // bring the original rule back.
      await pollUntil("the original rule back", () => {
        const now = run([
          "ip",
          "netns",
          "exec",
          node.name,
          "nft",
          "list",
          "chain",
          "inet",
          "symroute",
          ch,
        ]).stdout;
        return now.includes(original) && !now.includes("meta mark set 0x00000002") ? true : undefined;
      });
    });

    await t.test("a changed config file is applied without a restart", async () => {
      const rulesBefore = ownedRules(node.name).length;
      writeFileSync(config, TWO_NETWORKS);
      await pollUntil("the second network", () =>
        metric(node.name, "symroute_networks") === 2 ? true : undefined,
      );
      await pollUntil("its rules", () => (ownedRules(node.name).length > rulesBefore ? true : undefined));
      const routes = run(["ip", "netns", "exec", node.name, "ip", "route", "show", "table", "all"]).stdout;
      assert.match(routes, /198\.51\.100\.1 dev ext1/);
    });

    await t.test("a broken config file is refused and the last good one stays in force", async () => {
      const errorsBefore = metric(node.name, "symroute_config_errors_total") ?? 0;
      const rules = ownedRules(node.name);
      writeFileSync(config, "networks: [ { name: Bad Name } ]\n");
      await pollUntil("the config error", () => {
        const text = nsGet(node.name, `${URL_BASE}/metrics`).body;
        const v = text.split("\n").find((l) => l.startsWith('symroute_config_errors_total{source="file"}'));
        return v !== undefined && Number(v.split(" ").pop()) > errorsBefore ? true : undefined;
      });
      assert.deepEqual(ownedRules(node.name), rules);
      // The agent says the configuration it runs is not the file's: a gauge, and readiness.
      assert.equal(metric(node.name, "symroute_config_stale"), 1);
      const readyz = nsGet(node.name, `${URL_BASE}/readyz`);
      assert.equal(readyz.status, 200, "the last good configuration is still converged");
      assert.match(
        readyz.body,
        /running config is stale: the last edit of \S+agent\.yaml was refused \(.*name/,
      );
      writeFileSync(config, TWO_NETWORKS);
      await pollUntil("the stale gauge back to 0", () =>
        metric(node.name, "symroute_config_stale") === 0 ? true : undefined,
      );
      assert.equal(nsGet(node.name, `${URL_BASE}/readyz`).body, "converged\n");
    });

    await t.test("a second agent in the same namespace is refused with exit 1", async () => {
      const second = startAgentIn(node.name, [...args, "--listen", "127.0.0.1:9474"]);
      agents.push(second);
      const code = await second.exited(30_000);
      assert.equal(code, 1, second.output());
      assert.match(
        second.output(),
        /another symroute agent already runs in this network namespace \(pid \d+/,
      );
    });

    await t.test("SIGTERM: exit 0 and routing stays in place", async () => {
      const before = node.dump();
      assert.ok(ownedRules(node.name).length > 0);
      agent.child.kill("SIGTERM");
      assert.equal(await agent.exited(15_000), 0, agent.output());
      assert.equal(node.dump(), before, "rules, routes, firewall and sysctls are exactly as they were");
      assert.match(agent.output(), /routing stays in place/);
    });

    await t.test(
      "the lock is free again after exit; --cleanup-on-exit removes what symroute owns",
      async () => {
        const next = startAgentIn(node.name, [...args, "--cleanup-on-exit"]);
        agents.push(next);
        await ready(node.name);
        assert.ok(ownedRules(node.name).length > 0);
        next.child.kill("SIGTERM");
        assert.equal(await next.exited(15_000), 0, next.output());
        assert.deepEqual(ownedRules(node.name), []);
      },
    );
  },
);
