// Structural checks of deploy/: the CRD is generated and structural, the DaemonSet asks for exactly
// the documented capabilities, RBAC is least privilege, and the example config is valid.

import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { readConfigFile } from "../../src/agent/desired-config.ts";
import { renderCrdYaml } from "../../src/agent/kubernetes/crd-yaml.ts";
import { AGENT_NODE_FLAGS } from "../../src/agent/node-flags.ts";

const deployFile = (name: string): string =>
  readFileSync(new URL(`../../deploy/${name}`, import.meta.url), "utf8");
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const docs = (name: string): Obj[] =>
  parseAllDocuments(deployFile(name)).map((d) => {
    assert.equal(d.errors.length, 0, `${name}: ${d.errors.map((e) => e.message).join("; ")}`);
    return d.toJS() as Obj;
  });

/** Kubernetes' structural schema rules, as far as a CRD author can break them. */
function structuralProblems(schema: Obj, path: string, out: string[], root = false): string[] {
  const isMetadata = path.endsWith(".metadata");
  if (typeof schema.type !== "string" && schema["x-kubernetes-int-or-string"] !== true) {
    out.push(`${path}: no type`);
  }
  if (schema.additionalProperties === false) out.push(`${path}: additionalProperties: false`);
  if (schema.properties !== undefined && typeof schema.additionalProperties === "object") {
    out.push(`${path}: both properties and additionalProperties`);
  }
  for (const key of ["anyOf", "oneOf", "allOf", "not"]) {
    const branches: Obj[] = key === "not" ? (schema.not ? [schema.not] : []) : (schema[key] ?? []);
    for (const b of branches) {
      for (const forbidden of ["type", "default", "description", "nullable", "additionalProperties"]) {
        if (b[forbidden] !== undefined) out.push(`${path}.${key}: ${forbidden} inside a junctor`);
      }
    }
  }
  if (isMetadata && !root && Object.keys(schema).some((k) => k !== "type")) {
    out.push(`${path}: metadata may only have a type`);
  }
  for (const [name, child] of Object.entries((schema.properties ?? {}) as Record<string, Obj>)) {
    structuralProblems(child, `${path}.${name}`, out);
  }
  if (schema.items !== undefined) structuralProblems(schema.items as Obj, `${path}[]`, out);
  if (typeof schema.additionalProperties === "object") {
    structuralProblems(schema.additionalProperties as Obj, `${path}{}`, out);
  }
  return out;
}

describe("deploy/crd.yaml", () => {
  it("is what scripts/gen-crd.ts generates from the config schema", () => {
    assert.equal(deployFile("crd.yaml"), renderCrdYaml(), "run: node --import tsx scripts/gen-crd.ts");
  });

  it("has a structural schema, a status subresource and the expected names", () => {
    const [crd] = docs("crd.yaml");
    assert.ok(crd);
    assert.equal(crd.metadata.name, "symroutenetworks.symroute.io");
    assert.equal(crd.spec.scope, "Cluster");
    const [version] = crd.spec.versions as Obj[];
    assert.ok(version);
    assert.equal(version.name, "v1alpha1");
    assert.deepEqual(version.subresources, { status: {} });
    const schema = version.schema.openAPIV3Schema as Obj;
    assert.deepEqual(structuralProblems(schema, "openAPIV3Schema", [], true), []);
    const spec = schema.properties.spec as Obj;
    for (const key of [
      "addresses",
      "interface",
      "gateway",
      "vlan",
      "table",
      "method",
      "nodeSelector",
      "interfaceOverrides",
      "pools",
    ]) {
      assert.ok(spec.properties[key], `spec.${key}`);
    }
    assert.equal(spec.properties.name, undefined, "the network's name is the object's name");
    assert.equal(spec.required, undefined, "addresses and interface may come from MetalLB objects");
  });

  it("has standard status conditions (kubectl wait --for=condition=Converged) and shows them in columns", () => {
    const [crd] = docs("crd.yaml");
    const version = (crd?.spec.versions as Obj[])[0] as Obj;
    const status = version.schema.openAPIV3Schema.properties.status as Obj;
    const conditions = status.properties.conditions as Obj;
    assert.equal(conditions.type, "array");
    assert.equal(conditions["x-kubernetes-list-type"], "map");
    assert.deepEqual(conditions["x-kubernetes-list-map-keys"], ["type"]);
    assert.deepEqual([...(conditions.items.required as string[])].sort(), [
      "lastTransitionTime",
      "message",
      "reason",
      "status",
      "type",
    ]);
    assert.deepEqual(conditions.items.properties.status.enum, ["True", "False", "Unknown"]);
    const columns = Object.fromEntries(
      (version.additionalPrinterColumns as Obj[]).map((c) => [c.name, c.jsonPath]),
    );
    assert.equal(columns.Converged, '.status.conditions[?(@.type=="Converged")].status');
    assert.equal(columns.Nodes, ".status.convergedNodes");
    assert.equal(status.properties.convergedNodes.type, "string");
  });
});

describe("deploy/daemonset.yaml", () => {
  const [ds] = docs("daemonset.yaml");
  const pod = ds?.spec.template.spec as Obj;
  const [container] = pod.containers as Obj[];

  it("runs on the host network with NET_ADMIN only, not privileged, read-only root", () => {
    assert.equal(ds?.kind, "DaemonSet");
    assert.equal(pod.hostNetwork, true);
    assert.equal(pod.hostPID, undefined);
    assert.equal((pod.containers as Obj[]).length, 1);
    assert.equal(pod.initContainers, undefined);
    const sc = container?.securityContext as Obj;
    assert.deepEqual(sc.capabilities, { drop: ["ALL"], add: ["NET_ADMIN"] });
    assert.equal(sc.privileged, false);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.equal(pod.securityContext?.privileged, undefined);
  });

  it("listens on loopback only and probes there; keeps state on the host; gets its node name", () => {
    const args = container?.args as string[];
    assert.ok(args.includes("--listen=127.0.0.1:9473"));
    assert.ok(args.includes("--kubernetes"));
    assert.ok(!args.includes("--cleanup-on-exit"), "a restart must leave routing in place");
    assert.deepEqual(container?.ports, [{ name: "metrics", containerPort: 9473, protocol: "TCP" }]);
    const probes = [container?.startupProbe, container?.livenessProbe, container?.readinessProbe] as Obj[];
    for (const probe of probes) {
      assert.equal(probe.httpGet.host, "127.0.0.1");
      assert.equal(probe.httpGet.port, "metrics");
    }
    assert.deepEqual(
      probes.map((p) => p.httpGet.path),
      ["/healthz", "/healthz", "/readyz"],
    );
    const state = (pod.volumes as Obj[]).find((v) => v.name === "state");
    assert.equal(state?.hostPath.path, "/var/lib/symroute");
    const env = (container?.env as Obj[]).find((e) => e.name === "NODE_NAME");
    assert.equal(env?.valueFrom.fieldRef.fieldPath, "spec.nodeName");
  });
});

describe("deploy/daemonset.yaml: scheduling, image, resources", () => {
  const [ds] = docs("daemonset.yaml");
  const pod = ds?.spec.template.spec as Obj;
  const [container] = pod.containers as Obj[];

  it("tolerates the control-plane NoSchedule taints only (no NoExecute, no blanket Exists)", () => {
    assert.deepEqual(pod.tolerations, [
      { key: "node-role.kubernetes.io/control-plane", operator: "Exists", effect: "NoSchedule" },
      { key: "node-role.kubernetes.io/master", operator: "Exists", effect: "NoSchedule" },
    ]);
  });

  it("runs the image make image builds, which kustomization.yaml can repoint (newName, newTag)", () => {
    const version = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as Obj)
      .version as string;
    const script = readFileSync(new URL("../../scripts/image/build.sh", import.meta.url), "utf8");
    const name = /^name=\$\{IMAGE_NAME:-([^}]+)\}$/m.exec(script)?.[1];
    assert.equal(container?.image, `${name}:${version}`);
    const [k] = docs("kustomization.yaml");
    assert.deepEqual(k?.images, [{ name, newName: name, newTag: version }]);
  });

  it("asks for memory matching the measured footprint, with a limit above it", () => {
    const requests = container?.resources.requests as Obj;
    const limits = container?.resources.limits as Obj;
    const mi = (v: string): number => Number(/^(\d+)Mi$/.exec(v)?.[1]);
    assert.ok(mi(requests.memory) >= 128, "the agent holds about 130 MB");
    assert.ok(mi(limits.memory) >= 2 * mi(requests.memory));
    assert.ok(requests.cpu);
  });

  it("the namespace is labelled privileged for Pod Security admission (as MetalLB's)", () => {
    const [ns] = docs("namespace.yaml");
    assert.equal(ns?.metadata.labels["pod-security.kubernetes.io/enforce"], "privileged");
  });
});

describe("deploy/prometheus/", () => {
  it("scrapes the named metrics port, and alerts on metrics the agent exports", async () => {
    const { METRIC_NAMES } = await import("../../src/agent/metrics.ts");
    const [k] = docs("prometheus/kustomization.yaml");
    assert.deepEqual(k?.resources, ["..", "podmonitor.yaml", "prometheusrule.yaml"]);
    const [pm] = docs("prometheus/podmonitor.yaml");
    assert.equal(pm?.kind, "PodMonitor");
    assert.deepEqual(
      pm?.spec.podMetricsEndpoints.map((e: Obj) => e.port),
      ["metrics"],
    );
    const [rule] = docs("prometheus/prometheusrule.yaml");
    const rules = (rule?.spec.groups as Obj[]).flatMap((g) => g.rules as Obj[]);
    assert.deepEqual(
      rules.map((r) => r.alert),
      [
        "SymrouteNotConverged",
        "SymrouteConflicts",
        "SymrouteConfigErrors",
        "SymrouteStateBaselineUnknown",
        "SymrouteKubernetesApiErrors",
      ],
    );
    const known = new Set<string>(Object.values(METRIC_NAMES));
    for (const r of rules) {
      for (const name of (r.expr as string).match(/symroute_[a-z_]+/g) ?? []) {
        assert.ok(known.has(name), `${r.alert}: ${name} is not a metric the agent exports`);
      }
    }
    // The patch replaces the listen argument it expects to find (a `test` op guards it).
    const patch = (k?.patches as Obj[])[0]?.patch as string;
    assert.match(
      patch,
      /op: test\n\s+path: \/spec\/template\/spec\/containers\/0\/args\/5\n\s+value: --listen=127\.0\.0\.1:9473/,
    );
    const [ds] = docs("daemonset.yaml");
    assert.equal(ds?.spec.template.spec.containers[0].args[5], "--listen=127.0.0.1:9473");
  });
});

describe("deploy/rbac.yaml", () => {
  const objects = docs("rbac.yaml");
  it("grants read on its resources, pools and nodes, and write on nothing but its status", () => {
    const rules = objects
      .filter((o) => o.kind === "ClusterRole" || o.kind === "Role")
      .flatMap((o) => o.rules as Obj[]);
    const writeVerbs = new Set([
      "create",
      "update",
      "patch",
      "delete",
      "deletecollection",
      "*",
      "escalate",
      "bind",
      "impersonate",
    ]);
    for (const rule of rules) {
      const writes = (rule.verbs as string[]).filter((v) => writeVerbs.has(v));
      if (writes.length > 0) {
        assert.deepEqual(
          rule.resources,
          ["symroutenetworks/status"],
          "only the status subresource is written",
        );
        assert.deepEqual(rule.verbs, ["patch"]);
      } else {
        assert.deepEqual([...(rule.verbs as string[])].sort(), ["get", "list", "watch"]);
      }
      assert.ok(!(rule.resources as string[]).includes("*"));
      assert.ok(!(rule.apiGroups as string[]).includes("*"));
      assert.ok(!(rule.resources as string[]).includes("secrets"));
    }
    const metallb = objects.find((o) => o.kind === "Role");
    assert.equal(metallb?.metadata.namespace, "metallb-system", "pools are read in MetalLB's namespace only");
  });
});

describe("deploy/ other files", () => {
  it("the example config and the ConfigMap's config are valid", () => {
    const example = readConfigFile(deployFile("symroute.example.yaml"), "symroute.example.yaml");
    assert.ok(example.ok, example.ok ? "" : example.problems.join("\n"));
    const [cm] = docs("configmap.yaml");
    const inMap = readConfigFile(cm?.data["config.yaml"] as string, "configmap config.yaml");
    assert.ok(inMap.ok, inMap.ok ? "" : inMap.problems.join("\n"));
  });

  it("kustomization lists every manifest; the image script and systemd unit ask for the documented tools and capability", () => {
    const [k] = docs("kustomization.yaml");
    assert.deepEqual(k?.resources, [
      "namespace.yaml",
      "crd.yaml",
      "rbac.yaml",
      "configmap.yaml",
      "daemonset.yaml",
    ]);
    const script = readFileSync(new URL("../../scripts/image/build.sh", import.meta.url), "utf8");
    const packages = /^packages=(.*)$/m.exec(script)?.[1]?.split(",");
    assert.deepEqual(packages, ["nodejs", "iproute2", "nftables", "iptables", "ipset", "conntrack"]);
    const unit = deployFile("symroute.service");
    assert.match(unit, /^CapabilityBoundingSet=CAP_NET_ADMIN$/m);
    assert.match(unit, /^AmbientCapabilities=CAP_NET_ADMIN$/m);
    assert.doesNotMatch(unit, /cleanup-on-exit/);
  });

  it("every way of running the agent passes the agent's Node flags (src/agent/node-flags.ts)", () => {
    const command = ["node", ...AGENT_NODE_FLAGS, "/app/bin/symroute"];
    const [ds] = docs("daemonset.yaml");
    assert.deepEqual(ds?.spec.template.spec.containers[0].command, command);
    const script = readFileSync(new URL("../../scripts/image/build.sh", import.meta.url), "utf8");
    assert.equal(/Entrypoint: (\[.*\]),/.exec(script)?.[1], JSON.stringify(command).replaceAll(",", ", "));
    const unit = deployFile("symroute.service");
    assert.match(
      unit,
      new RegExp(`^ExecStart=/usr/bin/node ${AGENT_NODE_FLAGS.join(" ")} /usr/bin/symroute agent `, "m"),
    );
  });
});
