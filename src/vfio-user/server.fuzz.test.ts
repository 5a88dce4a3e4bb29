/**
 * Fuzz test of the server (see `testing/fuzz-harness.ts` for inputs and properties). 100,000 inputs
 * in one run with a fixed seed (reproducible); `npm run fuzz` runs longer with random seeds.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ServerFuzzTarget, serverFuzzProperty } from "./testing/fuzz-harness.ts";

const NUM_RUNS = 100_000;

test(`server survives ${NUM_RUNS} raw and mutated messages: replies, no leaks, keeps serving`, () => {
  const holder = { target: new ServerFuzzTarget() };
  const started = performance.now();
  fc.assert(serverFuzzProperty(holder), { numRuns: NUM_RUNS, seed: 0x5eed_f00d });
  const target = holder.target;
  target.finish();
  const ms = performance.now() - started;
  // Not a timing assertion: the figures are printed for the record.
  console.log(`fuzz: ${JSON.stringify(target.stats)} in ${ms.toFixed(0)} ms`);
  assert.equal(target.stats.cases, NUM_RUNS);
  assert.ok(target.stats.errorReplies > 0 && target.stats.replies > target.stats.errorReplies);
  assert.ok(target.stats.closes > 0);
});
