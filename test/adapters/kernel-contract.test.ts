// The contract suite against the in-memory fake.

import { articleNode, FakeKernel } from "../support/fake-kernel.ts";
import { kernelContract } from "../support/kernel-contract.ts";

kernelContract("fake kernel", async () => new FakeKernel({ ...articleNode(), rules: articleNode().rules }));
