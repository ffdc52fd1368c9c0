// Counted nouns and the words that agree with a count: singular for exactly one, whatever else.

import { test } from "node:test";
import assert from "node:assert/strict";
import { agreeing, counted } from "../../src/model/plural.ts";

test("counted: singular for exactly one, plural for none and many, irregular plurals as given", () => {
  assert.deepEqual(
    [0, 1, 2].map((n) => counted(n, "rule")),
    ["0 rules", "1 rule", "2 rules"],
  );
  assert.equal(counted(1, "route or rule", "routes and rules"), "1 route or rule");
  assert.equal(counted(3, "route or rule", "routes and rules"), "3 routes and rules");
});

test("agreeing: the word for one, else the other", () => {
  assert.deepEqual(
    [0, 1, 2].map((n) => agreeing(n, "is", "are")),
    ["are", "is", "are"],
  );
});
