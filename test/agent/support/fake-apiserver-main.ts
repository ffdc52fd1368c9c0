// The fake API server as a process of its own, for a test that runs the real CLI in a network
// namespace: started there (`ip netns exec NS node --import tsx fake-apiserver-main.ts FILE`), it
// listens on that namespace's 127.0.0.1, serves the collections FILE holds ({"PATH": [objects]})
// and prints its port as its first line. It runs until it is killed.

import { readFileSync } from "node:fs";
import { FakeApiServer } from "./fake-apiserver.ts";

const file = process.argv[2];
if (file === undefined) throw new Error("usage: fake-apiserver-main.ts COLLECTIONS.json");
const collections = JSON.parse(readFileSync(file, "utf8")) as Record<
  string,
  Parameters<FakeApiServer["collection"]>[1]
>;
const server = new FakeApiServer();
for (const [path, objects] of Object.entries(collections)) server.collection(path, objects);
await server.start();
process.stdout.write(`${server.port}\n`);
