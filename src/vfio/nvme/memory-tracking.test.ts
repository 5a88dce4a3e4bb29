/**
 * DMA logging reports against a scripted controlling function: whatever the device marked, the report
 * of a window sets exactly the pages of marked granules that the window touches, clears only the
 * granules wholly inside it, and a later report of the whole range finds the rest.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { AdminOpcode } from "../../nvme/opcodes.ts";
import { decodeTrackReceive } from "../../nvme/track-commands.ts";
import type { AdminChannel, AdminCommand, AdminReply } from "./admin-channel.ts";
import { MemoryTracking } from "./memory-tracking.ts";

const GRANULE = 4096;

/** A device whose one tracked range has `marks` (granule indexes) set until read. */
function device(granules: number, marks: readonly number[]): AdminChannel {
  const bits = new Uint8Array(Math.ceil(granules / 32) * 4);
  for (const g of marks) bits[g >>> 3]! |= 1 << (g & 7);
  return {
    async submit(cmd: AdminCommand): Promise<AdminReply> {
      if (cmd.opc !== AdminOpcode.TrackReceive) return { status: 0, dw0: 0 };
      const d = decodeTrackReceive(cmd);
      assert.ok(d.ok);
      const at = d.value.offset * 4;
      const n = (d.value.numd + 1) * 4;
      const data = bits.slice(at, at + n);
      bits.fill(0, at, at + n);
      return { status: 0, dw0: 0, data };
    },
    hostBuffer: () => {
      throw new Error("not used");
    },
  };
}

function pagesOf(bitmap: Uint8Array): number[] {
  const out: number[] = [];
  for (let p = 0; p < bitmap.byteLength * 8; p++) if ((bitmap[p >>> 3]! >> (p & 7)) & 1) out.push(p);
  return out;
}

test("property: a window's report sets the pages of marked granules it touches; the rest stay for later", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 300 }),
      fc.array(fc.nat(299), { maxLength: 40 }),
      fc.nat(299),
      fc.integer({ min: 1, max: 300 }),
      fc.constantFrom(1, 2, 8),
      async (granules, rawMarks, firstPage, pages, pagesPerReport) => {
        const marks = [...new Set(rawMarks.filter((g) => g < granules))];
        const base = 1 << 20;
        const t = new MemoryTracking(device(granules, marks), 1);
        await t.start([{ iova: BigInt(base), length: BigInt(granules * GRANULE) }], BigInt(GRANULE));
        const ps = GRANULE * pagesPerReport;
        const lo = base + firstPage * GRANULE;
        const length = pages * ps;
        const r = await t.reportAndClear(BigInt(lo), BigInt(length), BigInt(ps));
        assert.ok(r instanceof Uint8Array);
        const expected = new Set<number>();
        for (const g of marks) {
          const gLo = base + g * GRANULE;
          const gHi = gLo + GRANULE;
          if (gHi <= lo || gLo >= lo + length) continue;
          for (
            let p = Math.floor((Math.max(gLo, lo) - lo) / ps);
            p <= Math.floor((Math.min(gHi, lo + length) - 1 - lo) / ps);
            p++
          )
            expected.add(p);
        }
        assert.deepEqual(
          pagesOf(r),
          [...expected].sort((a, b) => a - b),
        );
        // The whole range now: exactly the marks the window did not hold wholly.
        const all = await t.reportAndClear(BigInt(base), BigInt(granules * GRANULE), BigInt(GRANULE));
        assert.ok(all instanceof Uint8Array);
        const left = marks.filter((g) => {
          const gLo = base + g * GRANULE;
          return !(gLo >= lo && gLo + GRANULE <= lo + length);
        });
        assert.deepEqual(
          pagesOf(all),
          left.sort((a, b) => a - b),
        );
      },
    ),
    { numRuns: 300 },
  );
});
