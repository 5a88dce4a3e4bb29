import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { LbaChangeLog, type LbaRange } from "./lba-change-log.ts";

/**
 * Reference model: the set of changed *units* (unit = floor(lba / g)); drain = maximal runs of units,
 * rounded out to the granularity and clipped to lbaCount.
 */
class ModelLog {
  readonly units = new Set<number>();
  constructor(
    readonly g: number,
    readonly lbaCount: number,
  ) {}
  record(slba: number, nlb: number): void {
    for (let lba = slba; lba < slba + nlb; lba++) this.units.add(Math.floor(lba / this.g));
  }
  pendingLbas(): number {
    let n = 0;
    for (const u of this.units) n += Math.min((u + 1) * this.g, this.lbaCount) - u * this.g;
    return n;
  }
  drain(maxRanges = Number.POSITIVE_INFINITY): LbaRange[] {
    const sorted = [...this.units].sort((a, b) => a - b);
    const runs: Array<[number, number]> = [];
    for (const u of sorted) {
      const last = runs[runs.length - 1];
      if (last !== undefined && last[1] === u) last[1] = u + 1;
      else runs.push([u, u + 1]);
    }
    const taken = runs.slice(0, Math.min(runs.length, maxRanges));
    for (const [a, b] of taken) for (let u = a; u < b; u++) this.units.delete(u);
    return taken.map(([a, b]) => ({
      slba: a * this.g,
      nlb: Math.min(b * this.g, this.lbaCount) - a * this.g,
    }));
  }
}

test("records coalesce into maximal ranges rounded out to the granularity, in LBA order", () => {
  const log = new LbaChangeLog({ granularityLbas: 8, lbaCount: 998 });
  log.record(100, 1); // unit 12 → [96, 104)
  log.record(16, 8); // unit 2
  log.record(24, 9); // units 3..4 → coalesces with unit 2
  log.record(995, 3); // last unit [992, 1000), clipped to 998
  assert.equal(log.pendingLbas(), 8 + 24 + 6);
  assert.deepEqual(log.drain(), [
    { slba: 16, nlb: 24 },
    { slba: 96, nlb: 8 },
    { slba: 992, nlb: 6 },
  ]);
  assert.equal(log.pendingLbas(), 0);
  assert.ok(log.isEmpty());
  assert.deepEqual(log.drain(), []);
});

test("drain(maxRanges) returns complete ranges and keeps the rest", () => {
  const log = new LbaChangeLog({ granularityLbas: 1 });
  log.record(0, 100_000); // one range spanning several pages
  log.record(200_000, 1);
  log.record(300_000, 2);
  assert.deepEqual(log.drain(1), [{ slba: 0, nlb: 100_000 }]);
  assert.equal(log.pendingLbas(), 3);
  assert.deepEqual(log.drain(5), [
    { slba: 200_000, nlb: 1 },
    { slba: 300_000, nlb: 2 },
  ]);
  assert.ok(log.isEmpty());
});

test("markAll marks the namespace; clear forgets everything", () => {
  const lbaCount = (64 * 1024 ** 3) / 512; // 64 GiB of 512-byte blocks
  const log = new LbaChangeLog({ lbaCount });
  log.markAll();
  assert.equal(log.pendingLbas(), lbaCount);
  assert.deepEqual(log.drain(), [{ slba: 0, nlb: lbaCount }]);
  log.markAll(1001);
  assert.equal(log.pendingLbas(), 1008);
  log.clear();
  assert.equal(log.pendingLbas(), 0);
  assert.throws(() => new LbaChangeLog().markAll(), RangeError);
});

test("bad arguments are bugs (RangeError); nlb 0 records nothing", () => {
  for (const g of [0, 3, 131072, 1.5])
    assert.throws(() => new LbaChangeLog({ granularityLbas: g }), RangeError);
  assert.throws(() => new LbaChangeLog({ lbaCount: 0 }), RangeError);
  const log = new LbaChangeLog({ lbaCount: 64 });
  log.record(10, 0);
  assert.ok(log.isEmpty());
  assert.throws(() => log.record(60, 5), RangeError);
  assert.throws(() => log.record(-1, 1), RangeError);
  assert.throws(() => log.record(1.5, 1), RangeError);
  assert.throws(() => log.drain(0), RangeError);
});

test("property: agrees with a Set model under random records and partial drains", () => {
  const action = fc.oneof(
    fc.record({
      kind: fc.constant("record" as const),
      slba: fc.nat({ max: 200_000 }),
      nlb: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 70_000 })),
    }),
    fc.record({ kind: fc.constant("drain" as const), max: fc.integer({ min: 1, max: 4 }) }),
  );
  fc.assert(
    fc.property(
      fc.constantFrom(1, 2, 8, 64, 4096),
      fc.integer({ min: 200_000, max: 300_000 }),
      fc.array(action, { maxLength: 30 }),
      (g, lbaCount, actions) => {
        const log = new LbaChangeLog({ granularityLbas: g, lbaCount });
        const model = new ModelLog(g, lbaCount);
        for (const a of actions) {
          if (a.kind === "record") {
            const nlb = Math.min(a.nlb, lbaCount - a.slba);
            log.record(a.slba, nlb);
            model.record(a.slba, nlb);
          } else {
            assert.deepEqual(log.drain(a.max), model.drain(a.max));
          }
          assert.equal(log.pendingLbas(), model.pendingLbas());
        }
        assert.deepEqual(log.drain(), model.drain());
        assert.ok(log.isEmpty());
      },
    ),
    { numRuns: 150 },
  );
});

test("property: dense random single-block records across a word/page boundary region", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 32_700, max: 32_840 }), { maxLength: 200 }), (lbas) => {
      const log = new LbaChangeLog({ granularityLbas: 1 });
      const model = new ModelLog(1, Number.MAX_SAFE_INTEGER);
      for (const lba of lbas) {
        log.record(lba, 1);
        model.record(lba, 1);
      }
      assert.deepEqual(log.drain(), model.drain());
    }),
    { numRuns: 300 },
  );
});
