// The contract suite against the in-memory fake.

import { articleNode, FakeKernel } from "../support/fake-kernel.ts";
import { kernelContract } from "../support/kernel-contract.ts";
import { kernelFailureContract } from "../support/kernel-contract-failures.ts";

const makeKernel = async () => new FakeKernel({ ...articleNode(), rules: articleNode().rules });
kernelContract("fake kernel", makeKernel);
kernelFailureContract("fake kernel", makeKernel);
