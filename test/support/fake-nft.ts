// What the fake kernel checks of an `nft -f` script before it takes it: the subset of nft's language
// that symroute writes (tables, base chains, rules one per line), refused where nft refuses it and
// at the line nft names. The contract suite's real-kernel run holds these verdicts against `nft -c`.

import { parsePrefix } from "../../src/model/address.ts";

/** Tables by "FAMILY NAME", each with the names of its chains. */
export type NftTables = ReadonlyMap<string, ReadonlySet<string>>;

export class NftRefusal extends Error {
  constructor(
    /** The line nft names, counted from 1 (the line after the last for an unexpected end). */
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

const FAMILIES = new Set(["ip", "ip6", "inet", "arp", "bridge", "netdev"]);
const CHAIN_TYPES = new Set(["filter", "route", "nat"]);
const HOOKS = new Set(["prerouting", "input", "forward", "output", "postrouting", "ingress", "egress"]);
const PRIORITY_NAMES = new Set(["raw", "mangle", "dstnat", "filter", "security", "srcnat", "out"]);
/** Words a rule may start with: the matches and statements symroute (and a person) would write. */
const RULE_STARTS = new Set([
  "ip",
  "ip6",
  "inet",
  "meta",
  "ct",
  "iif",
  "oif",
  "iifname",
  "oifname",
  "fib",
  "icmp",
  "icmpv6",
  "tcp",
  "udp",
  "th",
  "arp",
  "ether",
  "vlan",
  "mark",
  "counter",
  "log",
  "limit",
  "accept",
  "drop",
  "return",
  "jump",
  "goto",
  "reject",
  "notrack",
]);

/** The words of a line, strings kept whole (quotes included), `{ } , ;` apart. */
function words(text: string, line: number): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === " " || c === "\t") i++;
    else if (c === '"') {
      const end = text.indexOf('"', i + 1);
      if (end < 0) throw new NftRefusal(line, "syntax error, unexpected junk (unterminated string)");
      out.push(text.slice(i, end + 1));
      i = end + 1;
    } else if ("{},;".includes(c)) {
      out.push(c);
      i++;
    } else if (c === "#")
      break; // a comment to the end of the line
    else {
      let j = i;
      while (j < text.length && !' \t"{},;#'.includes(text[j] as string)) j++;
      out.push(text.slice(i, j));
      i = j;
    }
  }
  return out;
}

/** An address or prefix word nft would refuse (a prefix longer than the address). */
function badAddress(word: string): boolean {
  if (!word.includes("/")) return false;
  const looksV4 = /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(word);
  const looksV6 = /^[0-9a-fA-F:]*:[0-9a-fA-F:.]*\/\d+$/.test(word);
  return (looksV4 || looksV6) && parsePrefix(word) === undefined;
}

function checkBaseChain(w: readonly string[], line: number): void {
  // type T hook H [device "D"] priority P ; policy accept ;
  if (!CHAIN_TYPES.has(w[1] ?? "")) throw new NftRefusal(line, `unknown chain type ${w[1] ?? ""}`);
  if (w[2] !== "hook" || !HOOKS.has(w[3] ?? "")) throw new NftRefusal(line, "unknown chain hook");
  // An ingress or egress hook is one device's; the others are the family's.
  const perDevice = w[3] === "ingress" || w[3] === "egress";
  if (perDevice !== (w[4] === "device"))
    throw new NftRefusal(
      line,
      perDevice ? "Missing `device' in this chain definition" : "syntax error, unexpected device",
    );
  const at = perDevice ? 6 : 4;
  const priority = w[at + 1] ?? "";
  if (w[at] !== "priority" || !(PRIORITY_NAMES.has(priority) || /^-?\d+$/.test(priority)))
    throw new NftRefusal(line, "invalid priority expression value in this context.");
  const policy = w.indexOf("policy");
  if (policy >= 0 && !["accept", "drop"].includes(w[policy + 1] ?? ""))
    throw new NftRefusal(line, "syntax error, unexpected string (policy)");
}

function checkRule(w: readonly string[], line: number, jumps: { target: string; line: number }[]): void {
  if (!RULE_STARTS.has(w[0] ?? "")) throw new NftRefusal(line, `syntax error, unexpected ${w[0] ?? ""}`);
  let depth = 0;
  for (let i = 0; i < w.length; i++) {
    const word = w[i] as string;
    if (word === "{") depth++;
    else if (word === "}") {
      if (--depth < 0) throw new NftRefusal(line, "syntax error, unexpected '}'");
    } else if (word === "jump" || word === "goto") {
      const target = w[i + 1];
      if (target === undefined || "{},;".includes(target))
        throw new NftRefusal(line, `syntax error, ${word} without a chain`);
      jumps.push({ target, line });
    } else if (badAddress(word)) throw new NftRefusal(line, `Prefix length of ${word} is invalid`);
    else if (depth > 0 && /^(return|accept|drop|comment)$/.test(word) && w[i - 1] !== ":")
      throw new NftRefusal(line, `syntax error, unexpected ${word}, expecting comma or '}'`);
  }
  if (depth !== 0) throw new NftRefusal(line, "syntax error, unexpected newline, expecting comma or '}'");
}

/**
 * Checks `script` against the tables the kernel holds; returns the tables after it, or throws the
 * refusal (nothing of the script then applies: an nft transaction lands whole or not at all).
 */
export function checkNftScript(script: string, before: NftTables): Map<string, Set<string>> {
  const tables = new Map<string, Set<string>>([...before].map(([t, chains]) => [t, new Set(chains)]));
  const lines = script.split("\n");
  const jumps: { table: string; target: string; line: number }[] = [];
  /** Chains a `delete chain` of this script removed, with its line: a jump left to one is EBUSY there. */
  const deletedChains = new Map<string, number>();
  let table: string | undefined;
  let chain: string | undefined;
  let inSet = false;
  for (let n = 0; n < lines.length; n++) {
    const line = n + 1;
    const w = words(lines[n] as string, line);
    if (w.length === 0) continue;
    if (table === undefined) {
      // The commands of a partial transaction (render/nft-incremental.ts), one object each.
      const command = /^(add|flush|delete) (table|chain|rule)$/.exec(`${w[0] ?? ""} ${w[1] ?? ""}`);
      if (command !== null && !(w[0] === "delete" && w[1] === "table")) {
        const [family, name, chainName] = [w[2] ?? "", w[3] ?? "", w[4] ?? ""];
        if (!FAMILIES.has(family) || name === "")
          throw new NftRefusal(line, "syntax error, unexpected string, expecting end of file or newline");
        const key = `${family} ${name}`;
        if (w[1] === "table") {
          if (w[0] !== "add") throw new NftRefusal(line, `syntax error, unexpected ${w[0]} table`);
          if (!tables.has(key)) tables.set(key, new Set());
          continue;
        }
        const chains = tables.get(key);
        if (chains === undefined || chainName === "")
          throw new NftRefusal(line, "Could not process rule: No such file or directory");
        if (w[1] === "chain" && w[0] === "add") {
          chains.add(chainName);
          if (w[5] === "{") checkBaseChain(w.slice(6), line);
          continue;
        }
        if (!chains.has(chainName))
          throw new NftRefusal(line, "Could not process rule: No such file or directory");
        if (w[1] === "chain") {
          if (w[0] === "delete") {
            chains.delete(chainName);
            deletedChains.set(`${key} ${chainName}`, line);
          }
          continue;
        }
        if (w[0] !== "add") throw new NftRefusal(line, `syntax error, unexpected ${w[0]} rule`);
        const found: { target: string; line: number }[] = [];
        checkRule(w.slice(5), line, found);
        for (const j of found) jumps.push({ table: key, ...j });
        continue;
      }
      if (w[0] === "table" || (w[0] === "delete" && w[1] === "table")) {
        const at = w[0] === "table" ? 1 : 2;
        const [family, name] = [w[at] ?? "", w[at + 1] ?? ""];
        if (!FAMILIES.has(family) || name === "" || "{},;".includes(name))
          throw new NftRefusal(line, "syntax error, unexpected string, expecting end of file or newline");
        const key = `${family} ${name}`;
        const rest = w.slice(at + 2);
        if (w[0] === "delete") {
          if (rest.length > 0) throw new NftRefusal(line, "syntax error after delete table");
          if (!tables.delete(key))
            throw new NftRefusal(line, "Could not process rule: No such file or directory");
          continue;
        }
        if (!tables.has(key)) tables.set(key, new Set());
        if (rest.join(" ") === "{ }") continue;
        if (rest.join(" ") !== "{") throw new NftRefusal(line, "syntax error after table");
        table = key;
        continue;
      }
      if (w[0] === "}") throw new NftRefusal(line, "syntax error, unexpected '}'");
      throw new NftRefusal(line, `syntax error, unexpected ${w[0]} (the fake takes table blocks only)`);
    }
    const chains = tables.get(table) as Set<string>;
    if (chain === undefined && !inSet) {
      if (w[0] === "}" && w.length === 1) table = undefined;
      else if ((w[0] === "chain" || w[0] === "set" || w[0] === "map") && w[2] === "{") {
        if (w[0] === "chain") {
          chain = w[1] as string;
          chains.add(chain);
        } else inSet = true;
        if (w[3] === "}") chain = undefined; // `chain x {}`
        if (w[3] === "}") inSet = false;
      } else throw new NftRefusal(line, `syntax error, unexpected ${w[0]} in a table`);
      continue;
    }
    if (w[0] === "}" && w.length === 1) {
      chain = undefined;
      inSet = false;
    } else if (inSet)
      continue; // a set's declarations are not checked
    else if (w[0] === "type") checkBaseChain(w, line);
    else {
      const found: { target: string; line: number }[] = [];
      checkRule(w, line, found);
      for (const j of found) jumps.push({ table, ...j });
    }
  }
  if (table !== undefined) throw new NftRefusal(lines.length, "syntax error, unexpected end of file");
  // A jump may name a chain declared further down; only the whole transaction tells.
  for (const j of jumps) {
    if (tables.get(j.table)?.has(j.target) ?? false) continue;
    const deleted = deletedChains.get(`${j.table} ${j.target}`);
    if (deleted !== undefined)
      throw new NftRefusal(deleted, "Could not process rule: Device or resource busy");
    throw new NftRefusal(j.line, "Could not process rule: No such file or directory");
  }
  return tables;
}

/** One chain as the kernel holds it: its base-chain declaration (undefined: a regular chain) and rules. */
export interface NftChainContent {
  readonly hook: string | undefined;
  readonly rules: readonly string[];
}

/** Tables by "FAMILY NAME", each with its chains by name, in the order the kernel lists them. */
export type NftRuleset = ReadonlyMap<string, ReadonlyMap<string, NftChainContent>>;

/**
 * What a script that `checkNftScript` took does to the tables' content: table blocks (a chain block
 * for a chain that exists adds its rules to it, as nft does), and the commands `add table`,
 * `delete table`, `add chain` (with or without its hook), `flush chain`, `delete chain`, `add rule`.
 * Refused as nft refuses: a command on a missing table or chain, a chain deleted while a rule still
 * jumps to it, a chain whose hook an `add chain` would change. Returns a copy; `before` is untouched.
 */
export function applyNftScript(
  before: NftRuleset,
  script: string,
): Map<string, Map<string, NftChainContent>> {
  const tables = new Map([...before].map(([t, chains]) => [t, new Map(chains)]));
  const lines = script.split("\n");
  const chainOf = (table: string, chain: string, line: number): NftChainContent => {
    const found = tables.get(table)?.get(chain);
    if (found === undefined) throw new NftRefusal(line, "Could not process rule: No such file or directory");
    return found;
  };
  const tableOf = (table: string, line: number): Map<string, NftChainContent> => {
    const found = tables.get(table);
    if (found === undefined) throw new NftRefusal(line, "Could not process rule: No such file or directory");
    return found;
  };
  const deleted: { table: string; chain: string; line: number }[] = [];
  let table: string | undefined;
  let chain: string | undefined;
  for (let n = 0; n < lines.length; n++) {
    const line = n + 1;
    const text = (lines[n] as string).trim();
    if (text === "" || text.startsWith("#")) continue;
    if (table !== undefined) {
      if (chain !== undefined) {
        if (text === "}") chain = undefined;
        else {
          const c = chainOf(table, chain, line);
          if (text.startsWith("type ")) tableOf(table, line).set(chain, { ...c, hook: text });
          else tableOf(table, line).set(chain, { ...c, rules: [...c.rules, text] });
        }
        continue;
      }
      if (text === "}") {
        table = undefined;
        continue;
      }
      const start = /^chain (\S+) \{( \})?$/.exec(text);
      if (start === null) continue; // sets and maps: not modelled
      const name = start[1] as string;
      const chains = tableOf(table, line);
      if (!chains.has(name)) chains.set(name, { hook: undefined, rules: [] });
      if (start[2] === undefined) chain = name;
      continue;
    }
    let m = /^table (\S+) (\S+) \{ ?(\})?$/.exec(text);
    if (m !== null) {
      const key = `${m[1]} ${m[2]}`;
      if (!tables.has(key)) tables.set(key, new Map());
      if (m[3] === undefined) table = key;
      continue;
    }
    m = /^(add|delete) table (\S+) (\S+)$/.exec(text);
    if (m !== null) {
      const key = `${m[2]} ${m[3]}`;
      if (m[1] === "add") {
        if (!tables.has(key)) tables.set(key, new Map());
      } else if (!tables.delete(key))
        throw new NftRefusal(line, "Could not process rule: No such file or directory");
      continue;
    }
    m = /^add chain (\S+) (\S+) (\S+)(?: \{ (.*) \})?$/.exec(text);
    if (m !== null) {
      const key = `${m[1]} ${m[2]}`;
      const chains = tableOf(key, line);
      const hook = m[4];
      const existing = chains.get(m[3] as string);
      if (existing !== undefined && existing.hook !== hook)
        throw new NftRefusal(line, "Could not process rule: Operation not supported");
      if (existing === undefined) chains.set(m[3] as string, { hook, rules: [] });
      continue;
    }
    m = /^(flush|delete) chain (\S+) (\S+) (\S+)$/.exec(text);
    if (m !== null) {
      const key = `${m[2]} ${m[3]}`;
      const name = m[4] as string;
      const c = chainOf(key, name, line);
      if (m[1] === "flush") tableOf(key, line).set(name, { ...c, rules: [] });
      else {
        tableOf(key, line).delete(name);
        deleted.push({ table: key, chain: name, line });
      }
      continue;
    }
    m = /^add rule (\S+) (\S+) (\S+) (.+)$/.exec(text);
    if (m !== null) {
      const key = `${m[1]} ${m[2]}`;
      const c = chainOf(key, m[3] as string, line);
      tableOf(key, line).set(m[3] as string, { ...c, rules: [...c.rules, m[4] as string] });
      continue;
    }
    throw new NftRefusal(line, `syntax error, unexpected ${text.split(" ")[0] ?? ""}`);
  }
  // A chain still jumped to cannot be deleted (EBUSY); nor can a rule jump to a missing chain.
  for (const [key, chains] of tables) {
    for (const c of chains.values()) {
      for (const rule of c.rules) {
        for (const j of rule.matchAll(/\b(?:jump|goto) ([^\s,}]+)/g)) {
          if (chains.has(j[1] as string)) continue;
          const gone = deleted.find((d) => d.table === key && d.chain === j[1]);
          throw new NftRefusal(
            gone?.line ?? 1,
            gone === undefined
              ? "Could not process rule: No such file or directory"
              : "Could not process rule: Device or resource busy",
          );
        }
      }
    }
  }
  return tables;
}
