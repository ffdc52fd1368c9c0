// `symroute doctor` on the article's node behind a strict router (issue 13 item 5): the router
// (Linux, rp_filter 1) ignores ARP requests whose sender is outside its subnet, as real routers do
// (KERNEL-FACTS 10). Before anything fixes it, doctor finds the unresolved gateway and names the fix;
// the exit code is 3 (problems found) as `doctor --help` says.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createNode,
  e2eUnavailable,
  must,
  type Netns,
  configDir,
  writeConfigFile,
  PUBLIC_NETWORK,
} from "../support/netns.ts";
import type { DoctorReport, Finding } from "../../src/verify/doctor.ts";

const skip = e2eUnavailable();
const dir = configDir("symroute-doctor-");
const CONFIG = writeConfigFile(dir, "public.yaml", PUBLIC_NETWORK);

/** The router end of ext0 as real upstream routers are: its own subnet, source checks on. */
function strictRouter(node: Netns): void {
  must(["ip", "-n", node.peer, "addr", "add", "1.2.3.1/24", "dev", "r-ext0"]);
  must([
    "ip",
    "netns",
    "exec",
    node.peer,
    "sysctl",
    "-qw",
    "net.ipv4.ip_forward=1",
    "net.ipv4.conf.all.rp_filter=1",
    "net.ipv4.conf.r-ext0.rp_filter=1",
  ]);
  // Counts the ARP requests that reach the router: proof that the node asked and was ignored.
  must(
    ["ip", "netns", "exec", node.peer, "nft", "-f", "-"],
    "table arp seen {\n  chain requests {\n    type filter hook input priority 0; policy accept;\n    arp operation request counter\n  }\n}\n",
  );
}

function arpRequestsSeen(node: Netns): number {
  const out = must(["ip", "netns", "exec", node.peer, "nft", "-j", "list", "table", "arp", "seen"]);
  const doc = JSON.parse(out) as { nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[] };
  let n = 0;
  for (const item of doc.nftables)
    for (const e of item.rule?.expr ?? []) if (e.counter !== undefined) n += e.counter.packets;
  return n;
}

/**
 * Make the node send one packet to the gateway over ext0 (a route of a test table for a moment),
 * so that its kernel asks for 1.2.3.1's MAC; the route goes again, the neighbour entry stays.
 */
function sendToGateway(node: Netns): void {
  must(
    ["ip", "netns", "exec", node.name, "ip", "-batch", "-"],
    "route add 1.2.3.1/32 dev ext0 table 77\nrule add to 1.2.3.1 lookup 77 priority 77\n",
  );
  must([
    "ip",
    "netns",
    "exec",
    node.name,
    process.execPath,
    "-e",
    "const s=require('node:dgram').createSocket('udp4');s.send('x',9,'1.2.3.1',()=>s.close())",
  ]);
  must(
    ["ip", "netns", "exec", node.name, "ip", "-batch", "-"],
    "rule del to 1.2.3.1 lookup 77 priority 77\nroute del 1.2.3.1/32 dev ext0 table 77\n",
  );
}

function doctor(node: Netns): { code: number; report: DoctorReport } {
  const r = node.symroute(["doctor", "-c", CONFIG, "-o", "json"]);
  assert.ok(r.code === 0 || r.code === 3, `doctor exited ${r.code}: ${r.stderr}`);
  return { code: r.code, report: JSON.parse(r.stdout) as DoctorReport };
}

const finding = (report: DoctorReport, path: string, family = 4): Finding => {
  const f = report.findings.find((x) => x.path === path && x.family === family);
  assert.ok(f !== undefined, `no ${path} finding: ${JSON.stringify(report.findings, null, 2)}`);
  return f;
};

test(
  "doctor behind a strict router: the gateway cannot be resolved from ext0, before and after a try",
  { skip },
  (t) => {
    const node = createNode(t);
    strictRouter(node);

    // No traffic yet: no neighbour entry, and the sender the kernel would use is eth0's address:
    // a warning without strict ARP, a failure with it (arp_announce 2, as IPVS needs).
    const first = doctor(node);
    assert.equal(first.code, 3);
    const warned = finding(first.report, "gateway");
    assert.equal(warned.ok, true);
    assert.match(
      warned.summary,
      /would carry 192\.168\.1\.10 \(from eth0\) \(arp_announce 0\), which routers that check ARP senders ignore/,
    );
    assert.match(warned.warning ?? "", /would ignore the node's requests/);
    must(["ip", "netns", "exec", node.name, "sysctl", "-qw", "net.ipv4.conf.all.arp_announce=2"]);
    const strict = doctor(node);
    assert.equal(strict.code, 3);
    const predicted = finding(strict.report, "gateway");
    assert.equal(predicted.ok, false);
    assert.match(predicted.summary, /gateway 1\.2\.3\.1 cannot be resolved from ext0: no usable ARP sender/);
    assert.match(
      predicted.cause ?? "",
      /strict ARP \(arp_announce 2\) takes the ARP sender from another interface: 192\.168\.1\.10 \(from eth0\)/,
    );
    assert.ok(
      predicted.fix?.startsWith(`\`symroute apply -c ${CONFIG} --state-dir ${node.stateDir}\``),
      predicted.fix,
    );
    must(["ip", "netns", "exec", node.name, "sysctl", "-qw", "net.ipv4.conf.all.arp_announce=0"]);

    // The node asks; the router gets the request and ignores it: the entry stays unresolved.
    sendToGateway(node);
    const second = doctor(node);
    assert.equal(second.code, 3);
    const seen = finding(second.report, "gateway");
    assert.equal(seen.ok, false);
    assert.match(
      seen.summary,
      /gateway 1\.2\.3\.1 is not resolved on ext0 \(neighbour 1\.2\.3\.1 (INCOMPLETE|FAILED)\)/,
    );
    assert.ok(arpRequestsSeen(node) >= 1, "the router received the node's ARP request");
    const neigh = JSON.parse(must(["ip", "-n", node.name, "-j", "neigh", "show", "dev", "ext0"])) as {
      dst: string;
      state: string[];
    }[];
    assert.ok(
      neigh.some(
        (n) => n.dst === "1.2.3.1" && (n.state.includes("INCOMPLETE") || n.state.includes("FAILED")),
      ),
      JSON.stringify(neigh),
    );

    // Negative control: with an address of the gateway's subnet on ext0 the same router answers,
    // and doctor no longer flags the gateway.
    must(["ip", "-n", node.name, "addr", "add", "1.2.3.2/24", "dev", "ext0"]);
    must(["ip", "-n", node.name, "neigh", "flush", "dev", "ext0"]);
    sendToGateway(node);
    const fixed = finding(doctor(node).report, "gateway");
    assert.equal(fixed.ok, true, JSON.stringify(fixed));
    assert.match(fixed.summary, /ext0 has 1\.2\.3\.2\/24 in that subnet/);
  },
);

const DUAL = writeConfigFile(
  dir,
  "dual.yaml",
  `networks:
  - name: public
    addresses: [1.2.3.0/24]
    interface: ext0
    gateway: 1.2.3.1
  - name: public6
    addresses: [2001:db8:5::/64]
    interface: ext0
    gateway: 2001:db8:5::1
`,
);

test(
  "doctor: rp_filter lowered by hand and IPv6 unchecked are weakened anti-spoofing; the fix it names restores both, and the gateway resolves",
  { skip },
  (t) => {
    const node = createNode(t, { dualStack: true });
    strictRouter(node);
    must(["ip", "-n", node.peer, "addr", "add", "2001:db8:5::1/64", "dev", "r-ext0", "nodad"]);
    const run = (): DoctorReport => {
      const r = node.symroute(["doctor", "-c", DUAL, "-o", "json"]);
      assert.ok(r.code === 0 || r.code === 3, `doctor exited ${r.code}: ${r.stderr}`);
      return JSON.parse(r.stdout) as DoctorReport;
    };

    // conf.all.rp_filter 1: ext0 is checked (strictly) before anything is lowered; IPv6 never is.
    const start = run();
    assert.equal(finding(start, "anti-spoofing").ok, true, JSON.stringify(finding(start, "anti-spoofing")));
    const v6 = finding(start, "anti-spoofing", 6);
    assert.equal(v6.ok, false);
    assert.match(v6.cause ?? "", /Linux has no rp_filter for IPv6/);
    assert.ok(v6.fix?.startsWith("`symroute apply -c"), v6.fix);

    // Lowered by hand (what a user does after reading the article): weakened, and no guard.
    must(["ip", "netns", "exec", node.name, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
    const r = node.symroute(["doctor", "-c", DUAL]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(
      r.stdout,
      /FAIL public IPv4: anti-spoofing: the sources of packets arriving on ext0 are not checked/,
    );
    const weak = finding(run(), "anti-spoofing");
    assert.equal(weak.ok, false);
    assert.match(weak.summary, /effective rp_filter 0: conf\.all 0, conf\.ext0 0\) and no guard is in place/);
    assert.match(weak.fix ?? "", /^sysctl -w net\.ipv4\.conf\.ext0\.rp_filter=1, then `symroute apply -c /);

    // Do what it says: raise ext0, apply. symroute lowers it again and keeps the check in its guard.
    must(["ip", "netns", "exec", node.name, "sysctl", "-qw", "net.ipv4.conf.ext0.rp_filter=1"]);
    const applied = node.symroute(["apply", "-c", DUAL]);
    assert.equal(applied.code, 0, applied.stderr);
    const after = run();
    const guard4 = finding(after, "anti-spoofing");
    assert.equal(guard4.ok, true, JSON.stringify(guard4));
    assert.match(guard4.summary, /dropped by symroute's guard \(strict\) \(except to 1\.2\.3\.0\/24\)/);
    assert.equal(finding(after, "anti-spoofing", 6).ok, true);
    assert.equal(
      must(["ip", "netns", "exec", node.name, "sysctl", "-n", "net.ipv4.conf.ext0.rp_filter"]).trim(),
      "0",
    );

    // The same strict router now answers: requests leave as probes and the entry resolves.
    const probing = finding(after, "gateway");
    assert.equal(probing.ok, true, JSON.stringify(probing));
    assert.match(probing.summary, /RFC 5227 probes/);
    sendToGateway(node);
    const resolved = finding(run(), "gateway");
    assert.equal(resolved.ok, true, JSON.stringify(resolved));
    const neigh = JSON.parse(
      must(["ip", "-n", node.name, "-j", "neigh", "show", "dev", "ext0", "to", "1.2.3.1"]),
    ) as {
      state: string[];
    }[];
    assert.ok(
      neigh.length === 1 && !neigh[0]?.state.some((s) => s === "INCOMPLETE" || s === "FAILED"),
      JSON.stringify(neigh),
    );
    assert.ok(arpRequestsSeen(node) >= 1);
  },
);

/** Neighbour solicitations that reached the router's end of ext0's link. */
function solicitationsSeen(node: Netns): number {
  const out = must([
    "ip",
    "netns",
    "exec",
    node.peer,
    "nft",
    "-j",
    "list",
    "counter",
    "netdev",
    "nd-seen",
    "ns",
  ]);
  const doc = JSON.parse(out) as { nftables: { counter?: { packets: number } }[] };
  return doc.nftables.find((x) => x.counter !== undefined)?.counter?.packets ?? 0;
}

/** As sendToGateway, for IPv6: the node's kernel needs 2001:db8:5::1's MAC on ext0. */
function sendToGateway6(node: Netns): void {
  must(
    ["ip", "netns", "exec", node.name, "ip", "-6", "-batch", "-"],
    "route add 2001:db8:5::1/128 dev ext0 table 77\nrule add to 2001:db8:5::1 lookup 77 priority 77\n",
  );
  must([
    "ip",
    "netns",
    "exec",
    node.name,
    process.execPath,
    "-e",
    "const s=require('node:dgram').createSocket('udp6');s.send('x',9,'2001:db8:5::1',()=>s.close())",
  ]);
  must(
    ["ip", "netns", "exec", node.name, "ip", "-6", "-batch", "-"],
    "rule del to 2001:db8:5::1 lookup 77 priority 77\nroute del 2001:db8:5::1/128 dev ext0 table 77\n",
  );
}

function gatewayNeighbour6(node: Netns): string[] {
  const listed = JSON.parse(
    must(["ip", "-n", node.name, "-6", "-j", "neigh", "show", "dev", "ext0", "to", "2001:db8:5::1"]),
  ) as { state: string[] }[];
  return listed[0]?.state ?? [];
}

test(
  "doctor: an IPv6 gateway on an interface without a link-local address is never asked for; the fix it names resolves it",
  { skip },
  (t) => {
    const node = createNode(t, { dualStack: true });
    must(["ip", "-n", node.peer, "addr", "add", "2001:db8:5::1/64", "dev", "r-ext0", "nodad"]);
    must(
      ["ip", "netns", "exec", node.peer, "nft", "-f", "-"],
      'table netdev nd-seen {\n  counter ns { }\n  chain in {\n    type filter hook ingress device "r-ext0" priority 0; policy accept;\n    icmpv6 type nd-neighbor-solicit counter name "ns"\n  }\n}\n',
    );
    assert.equal(node.symroute(["apply", "-c", DUAL]).code, 0);
    // What netplan's `link-local: []` leaves: no address generation, no link-local address.
    must(["ip", "-n", node.name, "link", "set", "ext0", "addrgenmode", "none"]);
    must(["ip", "-n", node.name, "-6", "addr", "flush", "dev", "ext0", "scope", "link"]);

    sendToGateway6(node);
    const r = node.symroute(["doctor", "-c", DUAL, "-o", "json"]);
    assert.equal(r.code, 3, r.stderr + r.stdout);
    const f = finding(JSON.parse(r.stdout) as DoctorReport, "gateway", 6);
    assert.equal(f.ok, false);
    assert.match(
      f.summary,
      /gateway 2001:db8:5::1 cannot be resolved from ext0: it has no IPv6 link-local address/,
    );
    // The kernel sent nothing: the router saw no solicitation, the entry is not resolved.
    assert.equal(solicitationsSeen(node), 0);
    assert.ok(
      gatewayNeighbour6(node).every((s) => s === "INCOMPLETE" || s === "FAILED"),
      gatewayNeighbour6(node).join(","),
    );

    // The fix it names: the kernel makes the address, and the node's next solicitation is answered.
    const fix = /`(sysctl -w [^`]+)`/.exec(f.fix ?? "")?.[1];
    assert.ok(fix !== undefined, f.fix);
    must(["ip", "netns", "exec", node.name, ...fix.split(" ")]);
    must(["ip", "-n", node.name, "-6", "neigh", "flush", "dev", "ext0"]);
    sendToGateway6(node);
    assert.ok(solicitationsSeen(node) >= 1, "the router received the node's solicitation");
    let states = gatewayNeighbour6(node);
    for (
      let i = 0;
      i < 2000 && !states.some((s) => ["REACHABLE", "STALE", "DELAY", "PROBE"].includes(s));
      i++
    )
      states = gatewayNeighbour6(node);
    assert.ok(
      states.some((s) => ["REACHABLE", "STALE", "DELAY", "PROBE"].includes(s)),
      states.join(","),
    );
    const after = node.symroute(["doctor", "-c", DUAL, "-o", "json"]);
    const report = JSON.parse(after.stdout) as DoctorReport;
    assert.equal(
      report.findings.some((x) => x.path === "gateway" && x.family === 6),
      false,
      JSON.stringify(report.findings),
    );
  },
);
