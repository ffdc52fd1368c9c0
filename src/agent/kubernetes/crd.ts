// The SymrouteNetwork CustomResourceDefinition, built from the config file's own schema so that the
// two cannot drift apart: the spec is a network entry (its name is the object's name) plus the parts
// only a cluster has: a node selector, per-node-group interface overrides, and MetalLB pool references.

import { SYMROUTE_GROUP, SYMROUTE_KIND, SYMROUTE_PLURAL, SYMROUTE_VERSION } from "./resources.ts";

type Schema = Record<string, unknown>;

const labelSelector = (description: string): Schema => ({
  type: "object",
  description,
  properties: {
    matchLabels: { type: "object", additionalProperties: { type: "string" } },
    matchExpressions: {
      type: "array",
      items: {
        type: "object",
        required: ["key", "operator"],
        properties: {
          key: { type: "string" },
          operator: { type: "string", enum: ["In", "NotIn", "Exists", "DoesNotExist"] },
          values: { type: "array", items: { type: "string" } },
        },
      },
    },
  },
});

const nodeStatus: Schema = {
  type: "object",
  required: ["converged", "reason"],
  properties: {
    converged: { type: "boolean", description: "The node's routing matches this network." },
    reason: {
      type: "string",
      description: "CamelCase cause: Converged, Conflict, ApplyFailed, PoolNotFound...",
    },
    message: { type: "string" },
    lastTransitionTime: { type: "string", format: "date-time" },
    observedGeneration: { type: "integer", format: "int64" },
  },
};

/** metav1.Condition, as Kubernetes' own types declare it (kubectl wait --for=condition=Converged). */
const conditions: Schema = {
  type: "array",
  description:
    "Standard conditions. Converged: True when every node that reports on this network is converged.",
  "x-kubernetes-list-type": "map",
  "x-kubernetes-list-map-keys": ["type"],
  items: {
    type: "object",
    required: ["type", "status", "lastTransitionTime", "reason", "message"],
    properties: {
      type: { type: "string", maxLength: 316 },
      status: { type: "string", enum: ["True", "False", "Unknown"] },
      reason: {
        type: "string",
        minLength: 1,
        maxLength: 1024,
        pattern: "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
      },
      message: { type: "string", maxLength: 32768 },
      lastTransitionTime: { type: "string", format: "date-time" },
      observedGeneration: { type: "integer", format: "int64", minimum: 0 },
    },
  },
};

/** The network item of the config schema (`configJsonSchema().properties.networks.items`). */
function networkItemSchema(configSchema: Schema): Schema {
  const properties = (configSchema.properties as Record<string, Schema> | undefined)?.networks;
  const items = properties?.items as Schema | undefined;
  if (items === undefined || typeof items.properties !== "object") {
    throw new Error("the config schema has no networks[] item schema");
  }
  return items;
}

export function buildCrd(configSchema: Schema): Schema {
  const item = networkItemSchema(configSchema);
  const { name: _name, ...entryProperties } = item.properties as Record<string, Schema>;
  const vlan = entryProperties.vlan;
  const spec: Schema = {
    type: "object",
    description:
      "A network entry of the symroute config file (its name is this object's name). `addresses` may be " +
      "left out when `pools` refers to MetalLB IPAddressPools, and `interface` when an override or the " +
      "L2Advertisements name it.",
    properties: {
      ...entryProperties,
      nodeSelector: labelSelector("Nodes (by their labels) this network applies to; all nodes when absent."),
      interfaceOverrides: {
        type: "array",
        description: "Node-group specific interface names: the first entry whose nodeSelector matches wins.",
        items: {
          type: "object",
          properties: {
            nodeSelector: labelSelector("Nodes this override is for."),
            interface: entryProperties.interface,
            ...(vlan === undefined ? {} : { vlan }),
          },
        },
      },
      pools: {
        type: "object",
        description:
          "MetalLB IPAddressPools (metallb.io/v1beta1, in MetalLB's namespace) whose addresses this " +
          "network routes; only pools an L2Advertisement announces from the node count there.",
        properties: {
          names: { type: "array", items: { type: "string" } },
          selector: labelSelector("IPAddressPools by label."),
        },
      },
    },
  };
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${SYMROUTE_PLURAL}.${SYMROUTE_GROUP}` },
    spec: {
      group: SYMROUTE_GROUP,
      scope: "Cluster",
      names: {
        kind: SYMROUTE_KIND,
        listKind: `${SYMROUTE_KIND}List`,
        plural: SYMROUTE_PLURAL,
        singular: SYMROUTE_KIND.toLowerCase(),
        shortNames: ["srn"],
      },
      versions: [
        {
          name: SYMROUTE_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            {
              name: "Converged",
              type: "string",
              jsonPath: '.status.conditions[?(@.type=="Converged")].status',
            },
            {
              name: "Nodes",
              type: "string",
              description: "Converged nodes / nodes that report on this network.",
              jsonPath: ".status.convergedNodes",
            },
            { name: "Interface", type: "string", jsonPath: ".spec.interface" },
            { name: "Method", type: "string", jsonPath: ".spec.method" },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: "Reply routing for one MetalLB L2 network on its own subnet or VLAN (symroute).",
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec,
                status: {
                  type: "object",
                  description: "Written by the symroute agent on each node, each under its own node name.",
                  properties: {
                    conditions,
                    convergedNodes: {
                      type: "string",
                      description: "Converged nodes / nodes that report on this network, e.g. 3/4.",
                    },
                    nodes: {
                      type: "object",
                      description: "Per node: converged or not, and why.",
                      additionalProperties: nodeStatus,
                    },
                  },
                },
              },
            },
          },
        },
      ],
    },
  };
}
