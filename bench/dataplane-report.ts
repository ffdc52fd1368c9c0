// The data-plane section of docs/benchmarks.md, from bench/results/dataplane.json alone (written by
// bench/dataplane.bench.ts). Kept apart from report.ts so that the two evolve without conflicts.

import type { DataplaneResults, DataplaneVariant, PathResult } from "./dataplane.bench.ts";
import { counted } from "../src/model/plural.ts";
import { percentile, readResult, stats } from "./lib.ts";

const TARGET = 1.1;
const us = (ns: number): string => (Number.isFinite(ns) ? `${(ns / 1000).toFixed(1)} us` : "-");
const usFine = (ns: number): string => (Number.isFinite(ns) ? `${(ns / 1000).toFixed(2)} us` : "-");
const ratio = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)}x` : "-");
/** For verdicts against the target: three decimals, so that 1.104x does not read as 1.10x. */
const ratio3 = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(3)}x` : "-");
const median = (values: readonly number[]): number => stats(values).median;
const range = (values: readonly number[], fmt = us): string => {
  const s = stats(values);
  return s.n === 0 ? "-" : `${fmt(s.median)} (${fmt(s.min)} – ${fmt(s.max)}, n=${s.n})`;
};
/** Relative spread of a series: (max - min) / median / 2, as "±N%". */
const spread = (values: readonly number[]): string => {
  const s = stats(values);
  return s.n < 2 ? "-" : `±${((50 * (s.max - s.min)) / s.median).toFixed(0)}%`;
};
const label = (v: DataplaneVariant): string =>
  v.again === true
    ? `${label({ ...v, again: false })}, again (the run's noise: an A/A)`
    : v.firewall === "none"
      ? "no symroute"
      : v.firewall === "one-rule"
        ? "control: no symroute, plus one unrelated `ip rule`"
        : v.firewall === "rule-removed"
          ? "control: no symroute, one unrelated `ip rule` added and deleted again"
          : v.firewall === "empty-chain"
            ? "control: no symroute, plus an empty nft base chain at prerouting"
            : v.firewall === "ip-rules"
              ? `control: ${v.networks.toLocaleString("en-US")} \`ip rule fwmark\` lines, no firewall`
              : v.firewall === "ip-rules-skip"
                ? `control: the same lines behind one \`fwmark 0/MASK goto\` skip, no firewall`
                : `symroute, ${v.firewall}, ${v.networks.toLocaleString("en-US")} networks${v.narrowBand === true ? ", band too narrow for the skip rule (control)" : ""}${v.cli === undefined ? "" : ` (CLI \`${v.cli}\`)`}`;

/** The classify form `plan` named, and whether the rules had symroute's skip rule. */
const classifyText = (v: DataplaneVariant): string =>
  v.classify === undefined ? "-" : v.ruleSkip === true ? `${v.classify}, rule skip` : v.classify;

type Mode = "new" | "existing";
/** A path's results where the run measured it (SRBENCH_DATAPLANE_PATHS may leave a path empty). */
const measured = (p: PathResult | undefined): PathResult | undefined =>
  p !== undefined && (p.newFlowNs.length > 0 || p.existingFlowNs.length > 0) ? p : undefined;
const wall = (p: PathResult, mode: Mode): number[] => (mode === "new" ? p.newFlowNs : p.existingFlowNs);

/** Section 7 from bench/results/dataplane.json, or from the results given (a run of chosen variants). */
export function dataplaneSection(
  r: DataplaneResults | undefined = readResult<DataplaneResults>("dataplane"),
): string[] {
  const out: string[] = ["## 7. Data plane: cost per packet through the node (issue 15 item 2)", ""];
  if (r === undefined) {
    out.push(
      "Not measured (bench/results/dataplane.json is missing: bench/dataplane.bench.ts did not run).",
      "",
    );
    return out;
  }
  if (!r.available) {
    out.push(`Not measured: ${r.reason ?? "unavailable"}.`, "");
    return out;
  }
  const none = r.variants.find((v) => v.firewall === "none");
  /** The paths the target is judged on: through eth0, concerning no pool. */
  const targetPaths: readonly {
    readonly title: string;
    readonly short: string;
    readonly of: (v: DataplaneVariant) => PathResult | undefined;
  }[] = [
    { title: "Forwarded to a pod", short: "forwarded to a pod", of: (v) => measured(v) },
    {
      title: "Delivered to the node (a host-network backend)",
      short: "delivered to the node",
      of: (v) => measured(v.toNode),
    },
  ];
  const poolPath = {
    title: "Arriving on a pool's interface (the pool's own traffic)",
    short: "arriving on a pool's interface",
    of: (v: DataplaneVariant): PathResult | undefined => measured(v.toPool),
  };
  const replyPath = {
    title: "Replies of a pool's connection (the pod answering a client beyond a pool's gateway)",
    short: "replies of a pool's connection",
    of: (v: DataplaneVariant): PathResult | undefined => measured(v.toReply),
  };
  // Results from before the reply path leave it out of the page altogether (it renders as it did).
  const replies = r.variants.some((v) => replyPath.of(v) !== undefined);
  const paths = replies ? [...targetPaths, poolPath, replyPath] : [...targetPaths, poolPath];
  // Results from before the sender's CPU time (and before the node's socket sink) are judged on
  // wall time, as ratios of medians; since then on CPU time, as medians of per-round ratios.
  const cpuBased = r.timeBase === "cpu";
  const timed = (p: PathResult, mode: Mode): number[] =>
    cpuBased ? ((mode === "new" ? p.newFlowCpuNs : p.existingFlowCpuNs) ?? []) : wall(p, mode);
  /** p against base: the median of the per-round ratios (each round runs every variant back to back). */
  const perRound = (p: PathResult, base: PathResult, mode: Mode): number[] => {
    const a = timed(p, mode);
    const b = timed(base, mode);
    return a.length === b.length ? a.map((x, i) => x / (b[i] as number)) : [];
  };
  const versus = (p: PathResult | undefined, base: PathResult | undefined, mode: Mode): number => {
    if (p === undefined || base === undefined) return Number.NaN;
    if (!cpuBased) return median(wall(p, mode)) / median(wall(base, mode));
    return median(perRound(p, base, mode));
  };
  /** "A.AAx for new flows, B.BBx for existing ones" per path, of v against base. */
  const both = (v: DataplaneVariant, base: DataplaneVariant | undefined): string =>
    paths
      .filter((path) => path.of(v) !== undefined && base !== undefined && path.of(base) !== undefined)
      .map((path) => {
        const p = path.of(v);
        const b = base === undefined ? undefined : path.of(base);
        if (p === undefined || b === undefined) return `${path.short}: -`;
        return `${path.short} ${ratio(versus(p, b, "new"))} for new flows, ${ratio(versus(p, b, "existing"))} for existing ones`;
      })
      .join("; ");
  const loaded = Number(r.loadBefore.split(" ")[0]) > r.cpus;
  // Results from before the node's socket sink carry no proof of their existing flows.
  const proven = r.variants.some((v) =>
    [v, v.toNode, v.toPool, v.toReply].some((p) => p?.existingFlowProof !== undefined),
  );
  if (r.chosen === true)
    out.push(
      `> A run of chosen variants (\`SRBENCH_DATAPLANE_VARIANTS=${r.variants.map((v) => v.spec ?? v.firewall).join(",")}\`), not the section of \`make bench\`.`,
      "",
    );
  out.push(
    `Run ${r.date.slice(0, 16).replace("T", " ")} UTC: ${r.rounds} rounds of ${r.datagramsPerRound.toLocaleString("en-US")} datagrams per variant, mode and path, the variants visited in turn in every round (${cpuBased ? "ratios are medians of per-round ratios" : "ratios are of medians from the same run"}). Load average before ${r.loadBefore.split(" ").slice(0, 3).join(" ")}, after ${r.loadAfter?.split(" ").slice(0, 3).join(" ") ?? "-"}, on ${counted(r.cpus, "CPU")}${r.pinnedCpu === undefined ? "" : `; the sender pinned to CPU ${r.pinnedCpu}`}.`,
    "",
  );
  if (loaded)
    out.push(
      cpuBased
        ? `> **The machine was loaded** (load average above its ${r.cpus} CPUs, from other work): wall times are inflated and spread wide; the CPU times and the ratios, taken from them, much less (see How).`
        : `> **The machine was loaded** (load average above its ${r.cpus} CPUs, from other work): absolute times are inflated and the spread is wide; compare ratios, and re-run on a quiet machine before drawing fine conclusions.`,
      "",
    );
  out.push(
    "How: per variant, a node namespace with a kube-proxy stand-in (iptables nat DNAT rules, so conntrack is on in every variant): the service address 10.96.0.10 to a pod in a namespace of its own (which counts the datagrams and drops them in its prerouting hook), and 10.96.0.11 to the node's own eth0 address, one UDP port (a host-network backend: " +
      (proven
        ? "a socket with the smallest receive buffer, not read while the sender runs: the kernel delivers each datagram to it after every input hook, conntrack's confirm included, and drops it at the full buffer; counted in the node's /proc/net/snmp, InDatagrams + RcvbufErrors"
        : "in these results, which predate the socket, the node dropped the datagrams in an nft input hook at priority 0, before conntrack confirms the entry: its existing-flow column measured new flows") +
      "). A sender compiled at bench time (bench/flow-sender.c) in the node's peer sends 16-byte UDP datagrams to a service through the node's eth0: *new flow* sends each to a new port (a new conntrack entry), *existing flow* sends all on one flow that the backend has answered once (established in conntrack: a UDP flow without a reply stays new). Through veth the node and the pod process each datagram in the sender's context (softirq), so the sender's time per datagram includes the node's netfilter and routing path. The flows through eth0 concern no pool, and symroute's classify path passes them by without a lookup: in nftables eth0 has no ingress chain of symroute's (it tags only a pool's interface's packets), so in prerouting every packet, new or not, meets two tests, of the packet mark and of the ct direction; in iptables every packet, new or not, meets in mangle `PREROUTING` one `-i IF` test per guarded or pool interface (a native nft expression) and one connmark test (the only xtables match on its way, which a connection symroute did not mark fails; the ipset lookup is made only for a pool's interface). The third path, where measured, enters through ext0, a pool's interface, from the pool's gateway address to a LoadBalancer address in network 0's pool (100.64.0.10, DNATed to the pod like a service; ext0's MAC pinned in the peer's neighbour table, as MetalLB's ARP reply would): the flow symroute exists for. Its packets pass the guard on ext0, and a new connection is classified (nftables: the tag at ext0's ingress, then one map lookup on the destination writes the ct mark; iptables: `PREROUTING`'s `-i IF` test jumps to the interface's guard chain, whose first rule sends a new connection to `SYMROUTE-CLASSIFY`, where one `SET --map-set` lookup writes the mark, saved to the ct mark); a packet of an existing connection pays the guard (a set lookup on the destination, which returns the pool's packets: at ext0's ingress in nftables, in the guard chain `PREROUTING` jumps to in iptables, where it passes the connmark test too and fails the direction test) and, in nftables, the tag and its removal. The variants without symroute run rp_filter as symroute leaves it (off on ext0, strict on eth0), else the node would drop the pool's packets, whose source it routes through eth0. Without symroute the pod's reply is routed out of eth0, not ext0 (the wrong way, which symroute exists to fix), but conntrack has seen it at the node's prerouting, so the flow is established in every variant: " +
      (replies ? "this path measures" : "the bench measures") +
      " the forward direction only. The conntrack table is flushed before every batch. " +
      (replies
        ? "The fourth path, where measured, is the other direction of a pool's traffic: the peer sends one datagram from the gateway address of the variant's last network (network 0's without networks) to a LoadBalancer address in its pool, DNATed to the pod, and the pod answers it with the timed datagrams (its sender's time), which the node routes back to the client: in conntrack each is a reply of a connection symroute classified, so symroute restores its mark and the route lookup takes the network's table through its `fwmark` rule, the last of the list when the rules are one list (without symroute main routes them, out of eth0); the peer counts and drops them in its first hook. "
        : "") +
      "Where the classify column says `rule skip`, symroute rendered its skip rule (`fwmark 0x0/MASK goto` a `nop`, docs/config.md), so packets without a mark do not walk its fwmark rules.",
    "",
  );
  if (cpuBased) {
    // The first path the run measured.
    const first = paths.map((path) => (none === undefined ? undefined : path.of(none))).find((p) => p);
    const b = first?.newFlowCpuNs ?? [];
    const w = first?.newFlowNs ?? [];
    out.push(
      `Times are the sender thread's CPU time per datagram (\`CLOCK_THREAD_CPUTIME_ID\`): it holds the softirq work done in the sender's context, since this kernel does not account softirq time apart (\`CONFIG_IRQ_TIME_ACCOUNTING\` is off in /proc/config.gz; the bench falls back to wall time where it is on or unknown), and it leaves out the time other processes take the CPU away, which wall time counts. In this run no symroute's new-flow batches spread ${spread(b)} in CPU time against ${spread(w)} in wall time. Wall time per datagram, what earlier runs reported, is in the table beside it. The ratios are medians of per-round ratios: each round runs every variant back to back, in alternating order, so a change of load between rounds does not move them.`,
      "",
    );
  }
  out.push(
    "To re-run this section alone: `SRBENCH_ONLY=dataplane bash bench/run.sh` (as root; it rewrites bench/results/dataplane.json and this section only); to compare chosen variants side by side, e.g. two builds: `SRBENCH_ONLY=dataplane SRBENCH_DATAPLANE_VARIANTS=none,nftables:1000,nftables:1000@/other/tree/bin/symroute` (results in tmp/bench/, the page untouched; the knobs are listed in bench/run.sh).",
    "",
  );
  for (const path of paths) {
    const base = none === undefined ? undefined : path.of(none);
    if (!r.variants.some((v) => path.of(v) !== undefined)) {
      out.push(
        `### ${path.title}`,
        "",
        "Not measured in this run (the results predate this path, or `SRBENCH_DATAPLANE_PATHS` left it out).",
        "",
      );
      continue;
    }
    out.push(`### ${path.title}`, "");
    if (path === replyPath)
      out.push(
        "Issue 15 sets no target for this path: the ratios are information. What grows with the networks here is the walk of symroute's `fwmark` rules by a reply's route lookup (from 64 in a family they are in groups of 32 behind one goto each: docs/config.md, `rulePriorities`). Existing flows only (a reply belongs to a connection). The classified column says whether the connection's conntrack entry carried a ct mark.",
        "",
      );
    if (path === poolPath)
      out.push(
        "Issue 15 sets no target for this path: the ratios are information, the trade-off of classifying only a pool's interface's packets (docs/architecture.md). `make bench` measures it for a few variants only. The classified column says whether the existing flow's conntrack entry carried a ct mark (symroute classified the connection).",
        "",
      );
    if (cpuBased)
      out.push(
        "| variant | classify form (`plan`) | new flow: CPU, median (min – max) | vs none | wall | existing flow: CPU, median (min – max) | vs none | wall | delivered |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
      );
    else
      out.push(
        "| variant | classify form (`plan`) | new flow, median (min – max) | vs none | existing flow, median (min – max) | vs none | delivered |",
        "| --- | --- | --- | --- | --- | --- | --- |",
      );
    for (const v of r.variants) {
      const p = path.of(v);
      if (p === undefined) continue;
      const form =
        p.classified === undefined
          ? classifyText(v)
          : `${classifyText(v)}; ${p.classified ? "classified" : "not classified"}`;
      const delivered = Number.isFinite(p.delivered) ? `${(p.delivered * 100).toFixed(1)}%` : "-";
      out.push(
        cpuBased
          ? `| ${label(v)} | ${form} | ${range(timed(p, "new"), usFine)} | ${ratio(versus(p, base, "new"))} | ${us(median(p.newFlowNs))} | ${range(timed(p, "existing"), usFine)} | ${ratio(versus(p, base, "existing"))} | ${us(median(p.existingFlowNs))} | ${delivered} |`
          : `| ${label(v)} | ${form} | ${range(p.newFlowNs)} | ${ratio(versus(p, base, "new"))} | ${range(p.existingFlowNs)} | ${ratio(versus(p, base, "existing"))} | ${delivered} |`,
      );
    }
    out.push("");
  }
  out.push(
    `Target (issue 15), against no symroute: at most ${TARGET.toFixed(2)}x for new flows at 1,000 networks (5,000 is held to the same bar here); no measurable change for packets of existing flows${cpuBased ? " (measurable: the middle half of the per-round ratios, 25th to 75th percentile, lies above 1.00x)" : ""}.`,
    "",
  );
  for (const fw of ["nftables", "iptables"] as const) {
    for (const size of [1000, 5000]) {
      const v = r.variants.find((x) => x.firewall === fw && x.networks === size && x.narrowBand !== true);
      const name = `${fw}, ${size.toLocaleString("en-US")} networks`;
      if (v === undefined) {
        out.push(`- ${name}: not measured in this run.`);
        continue;
      }
      const verdicts = targetPaths.map((path) => {
        const p = path.of(v);
        const base = none === undefined ? undefined : path.of(none);
        if (p === undefined || base === undefined) return `${path.short}: not measured`;
        const q = versus(p, base, "new");
        const newFlows = `new flows ${ratio3(q)} ${q <= TARGET ? "**met**" : "**not met**"}`;
        if (!cpuBased) return `${path.short}: ${newFlows}`;
        const rounds = perRound(p, base, "existing");
        const low = percentile(rounds, 25);
        const existing = `existing flows ${ratio(versus(p, base, "existing"))} (middle half of the rounds ${ratio(low)} – ${ratio(percentile(rounds, 75))}) ${low > 1 ? "**not met**" : "**met**"}`;
        return `${path.short}: ${newFlows}, ${existing}`;
      });
      out.push(`- ${name}: ${verdicts.join("; ")}.`);
    }
  }
  const poolRows = r.variants.filter(
    (v) => v.toPool !== undefined && v.firewall !== "none" && none?.toPool !== undefined,
  );
  if (poolRows.length > 0)
    out.push(
      `- Arriving on a pool's interface (no target set by issue 15; information): ${poolRows
        .map((v) => {
          const p = v.toPool as PathResult;
          const b = none?.toPool as PathResult;
          return `${label(v)}: ${ratio(versus(p, b, "new"))} for new flows, ${ratio(versus(p, b, "existing"))} for existing ones`;
        })
        .join("; ")}.`,
    );
  const replyRows = r.variants.filter(
    (v) => v.toReply !== undefined && v.firewall !== "none" && none?.toReply !== undefined,
  );
  if (replyRows.length > 0)
    out.push(
      `- Replies of a pool's connection, to the variant's last network (no target set by issue 15; information): ${replyRows
        .map(
          (v) =>
            `${label(v)}: ${ratio(versus(v.toReply as PathResult, none?.toReply as PathResult, "existing"))}`,
        )
        .join("; ")}.`,
    );
  const control = r.variants.find((v) => v.firewall === "ip-rules");
  if (control !== undefined) {
    out.push(
      `- Control: ${control.networks.toLocaleString("en-US")} \`ip rule fwmark\` lines alone (no firewall at all): ${both(control, none)}. Every forwarded packet's route lookup walks the policy rules until one matches, and symroute adds one fwmark rule per network in front of main: this share is routing's, not the classify path's (what symroute's rules cost without the skip rule below).`,
    );
  }
  const skip = r.variants.find((v) => v.firewall === "ip-rules-skip");
  if (skip !== undefined) {
    out.push(
      `- Control: the same lines behind one rule \`fwmark 0x0/0x3fff goto\` a \`nop\` rule after them (packets without a mark, which is every packet that is not a reply of a pool's connection, skip the list): ${both(skip, none)}. ${r.variants.some((v) => v.ruleSkip === true) ? "symroute renders this skip itself from 3 fwmark rules in a family on (`rule skip` in the table)." : "symroute did not render this skip in this run (the results predate it, or no size had 3 networks)."}`,
    );
  }
  const twice = r.variants.find((v) => v.firewall === "none" && v.again === true);
  if (twice !== undefined) {
    out.push(
      `- Noise: the same node without symroute measured twice in every round: ${both(twice, none)}. A ratio that differs from 1.00x by no more than that is no measurable difference.`,
    );
  }
  const oneRule = r.variants.find((v) => v.firewall === "one-rule");
  if (oneRule !== undefined) {
    out.push(
      `- Control: one \`ip rule\` of anyone's, which no packet here matches (no symroute, no firewall): ${both(oneRule, none)}. The first rule added to a namespace turns the kernel's policy routing on for good (a rule added and deleted again costs as much: the \`rule-removed\` control, docs/architecture.md): its merged local/main lookup gives way to a walk of the rules and separate table lookups on every routed packet (twice per forwarded packet with rp_filter). Any node with a rule of any other tool pays this; symroute, whose replies need rules, pays it too.`,
    );
    for (const fw of ["nftables", "iptables"] as const) {
      const v = r.variants.find((x) => x.firewall === fw && x.networks === 1000 && x.narrowBand !== true);
      if (v === undefined) continue;
      out.push(
        `- What is symroute's own (${fw}, 1,000 networks, measured against the one-rule control instead of plain no symroute; the target above stays judged against no symroute): ${both(v, oneRule)}.`,
      );
    }
  }
  const chain = r.variants.find((v) => v.firewall === "empty-chain");
  if (chain !== undefined) {
    out.push(
      `- Control: one empty nft base chain at prerouting (no symroute, no rule): ${both(chain, none)}: what a hook of nftables' costs before any rule in it.`,
    );
  }
  const narrow = r.variants.find((v) => v.narrowBand === true);
  const withSkip =
    narrow === undefined
      ? undefined
      : r.variants.find(
          (v) => v.firewall === narrow.firewall && v.networks === narrow.networks && v.narrowBand !== true,
        );
  if (narrow !== undefined && withSkip !== undefined) {
    const pair = targetPaths.map((path) => {
      const base = none === undefined ? undefined : path.of(none);
      const a = path.of(withSkip);
      const b = path.of(narrow);
      if (base === undefined || a === undefined || b === undefined) return `${path.short}: -`;
      return `${path.short} ${ratio(versus(a, base, "new"))} with it, ${ratio(versus(b, base, "new"))} without`;
    });
    out.push(
      `- symroute's own skip rule (${narrow.firewall}, ${narrow.networks.toLocaleString("en-US")} networks, new flows; without it: the same config in a band of 4 priorities): ${pair.join("; ")}.`,
    );
  }
  out.push("");
  if (proven) {
    out.push("Sanity checks made during the run:", "");
    const problems = r.variants.flatMap((v) => (v.problems ?? []).map((p) => `${label(v)}: ${p}`));
    out.push(
      problems.length === 0
        ? "- After every batch, `conntrack -L` in the node: a new-flow batch left one confirmed entry per datagram, an existing-flow batch one replied entry (conntrack lists confirmed entries only)."
        : `- **After some batches conntrack did not hold what the mode means**: ${problems.slice(0, 8).join("; ")}.`,
    );
    const proofs = r.variants.flatMap((v) =>
      paths.flatMap((path) => {
        const p = path.of(v);
        return p?.existingFlowProof === undefined ? [] : [{ v, path, text: p.existingFlowProof }];
      }),
    );
    const failed = proofs.filter((p) => !p.text.startsWith("ok"));
    const sample = proofs[0];
    out.push(
      failed.length === 0 && sample !== undefined
        ? `- The existing flow, after the rounds with conntrack accounting on, in each of the ${proofs.length} variant-path pairs: ${[
            ...new Set(proofs.map((p) => p.text.replace(/^ok: /, ""))),
          ].join(
            "; or ",
          )} (the same in every pair${proofs.some((p) => p.path === replyPath) ? " of a direction" : ""}).`
        : `- **The existing flow is not what it should be** in ${failed.length} of ${proofs.length} variant-path pairs: ${failed
            .slice(0, 6)
            .map((p) => `${label(p.v)}, ${p.path.short}: ${p.text}`)
            .join("; ")}.`,
      "",
    );
  }
  return out;
}
