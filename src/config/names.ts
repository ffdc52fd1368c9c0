// Names that reach the kernel and other tools: interface names and network names.
// The rules are an allow-list, so a value that passes is safe in an argument, a comment and a log.

import { quoteString } from "./issues.ts";

/** IFNAMSIZ (16) minus the terminating NUL. */
const INTERFACE_NAME_MAX = 15;
/** Like a Kubernetes DNS label: it ends up in rule comments, keys and file names. */
const NETWORK_NAME_MAX = 63;

export const INTERFACE_RULE =
  'allowed: 1 to 15 of the characters A-Z a-z 0-9 _ . -, not starting with \'-\', and not "." or ".."';
export const NETWORK_NAME_RULE =
  "allowed: 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit";

/** Why `name` cannot be an interface name, or undefined when it can. */
export function interfaceNameProblem(name: string): string | undefined {
  if (name === "") return "is empty";
  const problem = characterProblem(name);
  if (problem !== undefined) return problem;
  if (name === "." || name === "..") return "is reserved by the kernel";
  if (name.startsWith("-")) return "starts with '-' (tools would read it as an option)";
  if (name.length > INTERFACE_NAME_MAX)
    return `is ${name.length} characters long; the kernel allows at most ${INTERFACE_NAME_MAX}`;
  return undefined;
}

/** What is wrong with the first character that cannot be in an interface name. */
function characterProblem(name: string): string | undefined {
  for (const ch of name) {
    if (/^[A-Za-z0-9_.-]$/.test(ch)) continue;
    if (/\s/u.test(ch)) return "contains whitespace";
    if (/\p{Cc}/u.test(ch)) return "contains a control character";
    if (ch === "/") return "contains '/' (the kernel refuses it)";
    if (ch === ":") return "contains ':' (tools read it as an address label)";
    if (ch === '"' || ch === "'" || ch === "`") return "contains a quote";
    return `contains ${quoteString(ch)}, which symroute does not accept in interface names`;
  }
  return undefined;
}

export function networkNameProblem(name: string): string | undefined {
  if (name === "") return "is empty";
  if (name.length > NETWORK_NAME_MAX) return `is ${name.length} characters long`;
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(name)) return "is not allowed";
  return undefined;
}
