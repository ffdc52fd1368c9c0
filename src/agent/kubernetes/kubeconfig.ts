// Finding the Kubernetes API: the places client-node's loadFromDefault looks, in its order, but
// without its last resort (http://localhost:8080, which only ever produced "HTTP protocol is not
// allowed" four times a second). Every place looked at is recorded, so that "no API" says what was
// tried and what was missing.

import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { KubeConfig } from "./client-node.ts";

const SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

export interface KubeConfigFound {
  readonly kubeConfig: KubeConfig;
  /** Where it came from and which API server it names, for log lines. */
  readonly from: string;
  readonly server: string;
}

export type KubeConfigDiscovery =
  ({ readonly found: true } & KubeConfigFound) | { readonly found: false; readonly tried: readonly string[] };

export interface DiscoveryEnvironment {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly home: string;
  readonly exists: (path: string) => boolean;
  readonly tokenPath: string;
}

const processEnvironment = (): DiscoveryEnvironment => ({
  env: process.env,
  home: homedir(),
  exists: existsSync,
  tokenPath: SERVICE_ACCOUNT_TOKEN,
});

/**
 * `file` (--kubeconfig) wins and must exist; then $KUBECONFIG, ~/.kube/config, the in-cluster
 * service account. Loading errors (a malformed file) are thrown: they are not "not found".
 */
export function discoverKubeConfig(
  file: string | undefined,
  environment: DiscoveryEnvironment = processEnvironment(),
): KubeConfigDiscovery {
  const { env, exists } = environment;
  const tried: string[] = [];
  const found = (kubeConfig: KubeConfig, from: string): KubeConfigDiscovery => ({
    found: true,
    kubeConfig,
    from,
    server: kubeConfig.getCurrentCluster()?.server ?? "(no current cluster)",
  });
  const fromFiles = (files: readonly string[], from: string): KubeConfigDiscovery => {
    const kc = new KubeConfig();
    const [first, ...rest] = files;
    kc.loadFromFile(first as string);
    for (const next of rest) {
      const more = new KubeConfig();
      more.loadFromFile(next);
      kc.mergeConfig(more);
    }
    return found(kc, from);
  };

  if (file !== undefined) {
    if (!exists(file)) return { found: false, tried: [`--kubeconfig ${file} (no such file)`] };
    return fromFiles([file], `--kubeconfig ${file}`);
  }
  tried.push("--kubeconfig (not given)");

  const listed = (env.KUBECONFIG ?? "").split(delimiter).filter((f) => f !== "");
  if (listed.length === 0) {
    tried.push("$KUBECONFIG (unset)");
  } else {
    const present = listed.filter((f) => exists(f));
    if (present.length > 0) return fromFiles(present, `$KUBECONFIG ${present.join(delimiter)}`);
    tried.push(`$KUBECONFIG ${listed.join(delimiter)} (no such file)`);
  }

  const homeConfig = join(environment.home, ".kube", "config");
  if (exists(homeConfig)) return fromFiles([homeConfig], homeConfig);
  tried.push(`${homeConfig} (no such file)`);

  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (host === undefined || host === "" || port === undefined || port === "") {
    tried.push("in-cluster service account (KUBERNETES_SERVICE_HOST/PORT unset)");
  } else if (!exists(environment.tokenPath)) {
    tried.push(`in-cluster service account (${environment.tokenPath}: no such file)`);
  } else {
    const kc = new KubeConfig();
    kc.loadFromCluster();
    return found(kc, "in-cluster service account");
  }
  return { found: false, tried };
}

/** One line for logs and /readyz. */
export function describeMissingKubeConfig(tried: readonly string[]): string {
  return `no Kubernetes API configuration found; tried: ${tried.join(", ")}`;
}
