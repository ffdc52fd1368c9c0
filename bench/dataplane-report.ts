// The data-plane section of docs/benchmarks.md, from bench/results/dataplane.json alone (written by
// bench/dataplane.bench.ts). Kept apart from report.ts so that the two evolve without conflicts.

import type { DataplaneResults, DataplaneVariant, PathResult } from "./dataplane.bench.ts";
import { readResult, stats } from "./lib.ts";

const TARGET = 1.1;
const us = (ns: number): string => (Number.isFinite(ns) ? `${(ns / 1000).toFixed(1)} us` : "-");
const ratio = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)}x` : "-");
const median = (values: readonly number[]): number => stats(values).median;
const range = (values: readonly number[]): string => {
  const s = stats(values);
  return s.n === 0 ? "-" : `${us(s.median)} (${us(s.min)} – ${us(s.max)}, n=${s.n})`;
};
const label = (v: DataplaneVariant): string =>
  v.firewall === "none"
    ? "no symroute"
    : v.firewall === "ip-rules"
      ? `control: ${v.networks.toLocaleString("en-US")} \`ip rule fwmark\` lines, no firewall`
      : v.firewall === "ip-rules-skip"
        ? `control: the same lines behind one \`fwmark 0/MASK goto\` skip, no firewall`
        : `symroute, ${v.firewall}, ${v.networks.toLocaleString("en-US")} networks${v.narrowBand === true ? ", band too narrow for the skip rule (control)" : ""}${v.cli === undefined ? "" : ` (CLI \`${v.cli}\`)`}`;

/** The classify form `plan` named, and whether the rules had symroute's skip rule. */
const classifyText = (v: DataplaneVariant): string =>
  v.classify === undefined ? "-" : v.ruleSkip === true ? `${v.classify}, rule skip` : v.classify;

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
  const paths: readonly {
    readonly title: string;
    readonly of: (v: DataplaneVariant) => PathResult | undefined;
  }[] = [
    { title: "Forwarded to a pod", of: (v) => v },
    { title: "Delivered to the node (a host-network backend)", of: (v) => v.toNode },
  ];
  const loaded = Number(r.loadBefore.split(" ")[0]) > r.cpus;
  if (r.chosen === true)
    out.push(
      `> A run of chosen variants (\`SRBENCH_DATAPLANE_VARIANTS=${r.variants.map((v) => v.spec ?? v.firewall).join(",")}\`), not the section of \`make bench\`.`,
      "",
    );
  out.push(
    `Run ${r.date.slice(0, 16).replace("T", " ")} UTC: ${r.rounds} rounds of ${r.datagramsPerRound.toLocaleString("en-US")} datagrams per variant, mode and path, the variants visited in turn in every round (ratios are of medians from the same run). Load average before ${r.loadBefore.split(" ").slice(0, 3).join(" ")}, after ${r.loadAfter?.split(" ").slice(0, 3).join(" ") ?? "-"}, on ${r.cpus} CPU(s).`,
    "",
  );
  if (loaded)
    out.push(
      `> **The machine was loaded** (load average above its ${r.cpus} CPUs, from other work): absolute times are inflated and the spread is wide; compare ratios, and re-run on a quiet machine before drawing fine conclusions.`,
      "",
    );
  out.push(
    "How: per variant, a node namespace with a kube-proxy stand-in (iptables nat DNAT rules, so conntrack is on in every variant): the service address 10.96.0.10 to a pod in a namespace of its own, and 10.96.0.11 to the node's own eth0 address (a host-network backend; the node drops the datagrams in its input hook, after routing, and counts them). A sender compiled at bench time (bench/flow-sender.c) in the node's peer sends 16-byte UDP datagrams to a service through the node's eth0: *new flow* sends each to a new port (a new conntrack entry, the classify path), *existing flow* sends all on one flow that the backend has answered once (established in conntrack: a UDP flow without a reply stays new). Through veth the node and the pod process each datagram in the sender's context, so wall time per datagram includes the node's netfilter and routing path. These flows concern no pool: a rule list is walked to its end. The conntrack table is flushed before every batch. To re-run this section alone: `SRBENCH_ONLY=dataplane bash bench/run.sh` (as root; it rewrites bench/results/dataplane.json and this section only); to compare chosen variants side by side, e.g. two builds: `SRBENCH_ONLY=dataplane SRBENCH_DATAPLANE_VARIANTS=none,nftables:1000,nftables:1000@/other/tree/bin/symroute` (results in tmp/bench/, the page untouched; the knobs are listed in bench/run.sh). Where the classify column says `rule skip`, symroute rendered its skip rule (`fwmark 0x0/MASK goto` a `nop`, docs/config.md), so packets without a mark do not walk its fwmark rules.",
    "",
  );
  for (const path of paths) {
    const base = none === undefined ? undefined : path.of(none);
    const baseNew = median(base?.newFlowNs ?? []);
    const baseOld = median(base?.existingFlowNs ?? []);
    if (!r.variants.some((v) => path.of(v) !== undefined)) {
      out.push(`### ${path.title}`, "", "Not measured in this run (the results predate this path).", "");
      continue;
    }
    out.push(
      `### ${path.title}`,
      "",
      "| variant | classify form (`plan`) | new flow, median (min – max) | vs none | existing flow, median (min – max) | vs none | delivered |",
      "| --- | --- | --- | --- | --- | --- | --- |",
    );
    for (const v of r.variants) {
      const p = path.of(v);
      if (p === undefined) continue;
      out.push(
        `| ${label(v)} | ${classifyText(v)} | ${range(p.newFlowNs)} | ${ratio(median(p.newFlowNs) / baseNew)} | ${range(p.existingFlowNs)} | ${ratio(median(p.existingFlowNs) / baseOld)} | ${(p.delivered * 100).toFixed(1)}% |`,
      );
    }
    out.push("");
  }
  out.push(
    `Target (issue 15): at most ${TARGET.toFixed(2)}x for new flows at 1,000 networks (5,000 is held to the same bar here); no measurable change for packets of existing flows.`,
    "",
  );
  for (const fw of ["nftables", "iptables"] as const) {
    for (const size of [1000, 5000]) {
      const v = r.variants.find((x) => x.firewall === fw && x.networks === size && x.narrowBand !== true);
      const name = `${fw}, ${size.toLocaleString("en-US")} networks, new flows`;
      if (v === undefined) {
        out.push(`- ${name}: not measured in this run.`);
        continue;
      }
      const verdicts = paths.map((path) => {
        const p = path.of(v);
        const base = none === undefined ? undefined : path.of(none);
        if (p === undefined || base === undefined) return `${path.title.toLowerCase()}: not measured`;
        const q = median(p.newFlowNs) / median(base.newFlowNs);
        return `${path.title.toLowerCase().replace(/ \(.*\)$/, "")} ${ratio(q)} ${q <= TARGET ? "**met**" : "**not met**"}`;
      });
      out.push(`- ${name}: ${verdicts.join("; ")}.`);
    }
  }
  const baseNew = median(none?.newFlowNs ?? []);
  const baseOld = median(none?.existingFlowNs ?? []);
  const control = r.variants.find((v) => v.firewall === "ip-rules");
  if (control !== undefined) {
    const q = median(control.newFlowNs) / baseNew;
    const qe = median(control.existingFlowNs) / baseOld;
    out.push(
      `- Control: ${control.networks.toLocaleString("en-US")} \`ip rule fwmark\` lines alone (no firewall at all) cost ${ratio(q)} for new flows and ${ratio(qe)} for existing ones. Every forwarded packet's route lookup walks the policy rules until one matches, and symroute adds one fwmark rule per network in front of main: this share is routing's, not the classify path's (what symroute's rules cost without the skip rule below).`,
    );
  }
  const skip = r.variants.find((v) => v.firewall === "ip-rules-skip");
  if (skip !== undefined) {
    out.push(
      `- Control: the same lines behind one rule \`fwmark 0x0/0x3fff goto\` a \`nop\` rule after them (packets without a mark, which is every packet that is not a reply of a pool's connection, skip the list): ${ratio(median(skip.newFlowNs) / baseNew)} for new flows, ${ratio(median(skip.existingFlowNs) / baseOld)} for existing ones. ${r.variants.some((v) => v.ruleSkip === true) ? "symroute renders this skip itself from 3 fwmark rules in a family on (`rule skip` in the table)." : "symroute did not render this skip in this run (the results predate it, or no size had 3 networks)."}`,
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
    const both = paths.map((path) => {
      const base = none === undefined ? undefined : path.of(none);
      const a = path.of(withSkip);
      const b = path.of(narrow);
      if (base === undefined || a === undefined || b === undefined) return `${path.title.toLowerCase()}: -`;
      const q = (p: PathResult): string => ratio(median(p.newFlowNs) / median(base.newFlowNs));
      return `${path.title.toLowerCase()} ${q(a)} with it, ${q(b)} without`;
    });
    out.push(
      `- symroute's own skip rule (${narrow.firewall}, ${narrow.networks.toLocaleString("en-US")} networks, new flows; without it: the same config in a band of 4 priorities): ${both.join("; ")}.`,
    );
  }
  out.push("");
  return out;
}
