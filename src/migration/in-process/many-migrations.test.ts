/**
 * Acceptance: ≥ 100 seeded live migrations under load — mixed read/write on several queues, random
 * switch-over moments, both storage modes and both PF profiles — and the verifier reports zero lost
 * acknowledged writes, zero bad reads, zero duplicate or missing completions for every one. The same
 * workload (and verifier) runs across all migrations of a combination, and is checked after each.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Workload } from "../../vmm/workload.ts";
import { TwoHosts } from "./two-hosts.ts";

const MIGRATIONS_PER_COMBINATION = 25;

/** Deterministic PRNG (mulberry32) for switch-over moments. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const combinations = [
  { storage: "shared", profile: "tp4159", seed: 11 },
  { storage: "local", profile: "tp4159", seed: 12 },
  { storage: "shared", profile: "intel", seed: 13 },
  { storage: "local", profile: "intel", seed: 14 },
] as const;

for (const c of combinations) {
  test(`${MIGRATIONS_PER_COMBINATION} migrations, ${c.storage} storage, ${c.profile} profile, seed ${c.seed}: zero loss`, async () => {
    const rand = prng(c.seed);
    const t = await TwoHosts.start({
      storage: c.storage,
      profile: c.profile,
      namespaceBytes: 1 << 20,
      vmRamBytes: 8 << 20,
      ioQueuePairs: 3,
    });
    try {
      let w: Workload | undefined;
      for (let i = 0; i < MIGRATIONS_PER_COMBINATION; i++) {
        w = new Workload(t.vm.driver, t.vm.memory, {
          pattern: "random",
          readPercent: 40 + Math.floor(rand() * 30),
          blockBytes: rand() < 0.5 ? 4096 : 8192,
          queueDepth: 4 + Math.floor(rand() * 12),
          queues: 3,
          seed: c.seed * 1000 + i,
          ...(w?.verifier !== undefined ? { verifier: w.verifier } : {}),
        });
        const running = w.start();
        // Random switch-over moment.
        await new Promise((r) => setTimeout(r, 2 + Math.floor(rand() * 25)));
        const report = await t.migrate({ maxDowntimeMs: 20, maxIterations: 4 });
        assert.equal(report.result, "completed", `migration ${i}: ${JSON.stringify(report.error)}`);
        await new Promise((r) => setTimeout(r, 1 + Math.floor(rand() * 10)));
        await w.stop();
        await running;
        const v = await w.verify();
        assert.equal(v.lostWrites, 0, `migration ${i}: lost writes`);
        assert.equal(v.badReads, 0, `migration ${i}: bad reads ${JSON.stringify(v.failures?.slice(0, 2))}`);
        assert.equal(v.duplicateCompletions, 0, `migration ${i}: duplicate completions`);
        assert.equal(v.missingCompletions, 0, `migration ${i}: missing completions`);
        assert.equal(v.verified, true, `migration ${i}`);
        assert.ok(w.stats().ops > 0, `migration ${i}: the workload ran`);
        w.release(); // frees its guest buffers; the verifier carries on into the next run
      }
    } finally {
      await t.stop();
    }
  });
}
