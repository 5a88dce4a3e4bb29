/**
 * The demo scenario (what `npm start` runs), shortened: two hosts, a verified workload on VF1, a live
 * migration there and back, and the verifier's report with zero lost, bad, duplicate or missing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runDemoScenario } from "./run-demo.ts";

test("demo: migrate there and back under verified load, zero loss", async () => {
  const r = await runDemoScenario({ runMs: 150 });
  assert.equal(r.verified, true);
  assert.equal(r.lostWrites, 0);
  assert.equal(r.badReads, 0);
  assert.equal(r.duplicateCompletions, 0);
  assert.equal(r.missingCompletions, 0);
  assert.ok(r.ops > 0);
  assert.equal(r.migrations.length, 2);
  for (const m of r.migrations) {
    assert.equal(m.result, "completed");
    assert.ok(m.downtimeMs > 0 && m.deviceDowntimeMs > 0 && m.deviceDowntimeMs <= m.downtimeMs);
    assert.ok(m.stateBytes > 0 && m.bytesTransferred > 0);
  }
});
