// The parts of @kubernetes/client-node the agent uses, and nothing else. The package is 21 MB of
// JavaScript in about 2,000 modules (every generated API and model); loading it whole costs the
// agent about 70 MiB of resident memory. `make build` bundles this one file with only the package
// code it reaches (scripts/bundle-kubernetes-client.ts, about 1.6 MB), which costs about 20 MiB.
// Tests and `tsx` use the package directly.

export {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  ListWatch,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type KubernetesListObject,
  type KubernetesObject,
} from "@kubernetes/client-node";
