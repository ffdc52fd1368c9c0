// What the lab needs from the machine, checked up front so that a missing piece is named plainly.

import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { SymrouteError } from "../model/errors.ts";

const DEBIAN_PACKAGES = "iproute2 nftables iptables ipset conntrack";

/** Tool, and the Debian package it comes from. */
const TOOLS: readonly (readonly [string, string])[] = [
  ["ip", "iproute2"],
  ["nft", "nftables"],
  ["iptables-restore", "iptables"],
  ["ip6tables-restore", "iptables"],
  // The iptables front end keeps its pools in ipsets.
  ["ipset", "ipset"],
  ["sysctl", "procps"],
];

async function onPath(tool: string): Promise<boolean> {
  const dirs = (process.env["PATH"] ?? "").split(delimiter).filter((d) => d !== "");
  for (const dir of dirs) {
    try {
      await access(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      // Not in this directory.
    }
  }
  return false;
}

/** Throws a SymrouteError naming what is missing: Linux, root, or a tool (with its package). */
export async function checkLabPrerequisites(): Promise<void> {
  const hint = `the lab needs Linux, root, and the Debian packages ${DEBIAN_PACKAGES} (apt-get install ${DEBIAN_PACKAGES})`;
  if (process.platform !== "linux") {
    throw new SymrouteError(
      "not-supported",
      `the lab builds Linux network namespaces; this is ${process.platform}`,
      {
        hint,
      },
    );
  }
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    throw new SymrouteError("permission", "the lab creates network namespaces and must run as root", {
      hint: `run it with sudo; ${hint}`,
    });
  }
  const missing: string[] = [];
  for (const [tool, pkg] of TOOLS) {
    if (!(await onPath(tool))) missing.push(`${tool} (Debian package ${pkg})`);
  }
  if (missing.length > 0) {
    throw new SymrouteError(
      "dependency",
      `the lab needs tools that are not installed: ${missing.join(", ")}`,
      {
        hint,
      },
    );
  }
}
