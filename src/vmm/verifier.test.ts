import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { BLOCK_INVALID, BLOCK_ZERO, checkBlockPattern, writeBlockPattern } from "./block-pattern.ts";
import { Verifier, VerifierError } from "./verifier.ts";

const LBA = 512;
const ABORTED = 0x0007;

function dv(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A tiny in-memory "device": the media, and helpers to run commands against it. */
class Media {
  readonly bytes: Uint8Array;
  constructor(blocks: number) {
    this.bytes = new Uint8Array(blocks * LBA);
  }
  apply(lbaIndex: number, src: Uint8Array): void {
    this.bytes.set(src, lbaIndex * LBA);
  }
  snapshot(lbaIndex: number, nlb: number): Uint8Array {
    return this.bytes.slice(lbaIndex * LBA, (lbaIndex + nlb) * LBA);
  }
}

function newVerifier(lbaCount = 8, lbaStart = 100): Verifier {
  return new Verifier({ nsid: 1, lbaBytes: LBA, lbaStart, lbaCount });
}

test("block pattern: round trip, zero, torn, misdirected, wrong namespace", () => {
  const buf = new Uint8Array(4 * LBA);
  const v = dv(buf);
  assert.equal(checkBlockPattern(v, 0, LBA, 1, 7), BLOCK_ZERO);
  writeBlockPattern(v, 0, LBA, 1, 7, 3);
  assert.equal(checkBlockPattern(v, 0, LBA, 1, 7), 3);
  assert.equal(checkBlockPattern(v, 0, LBA, 1, 8), BLOCK_INVALID, "another LBA's block");
  assert.equal(checkBlockPattern(v, 0, LBA, 2, 7), BLOCK_INVALID, "another namespace's block");
  writeBlockPattern(v, LBA, LBA, 1, 7, 4);
  // Torn: first half generation 3, second half generation 4.
  buf.copyWithin(LBA / 2, LBA + LBA / 2, 2 * LBA);
  assert.equal(checkBlockPattern(v, 0, LBA, 1, 7), BLOCK_INVALID);
  // A single flipped bit in the fill.
  writeBlockPattern(v, 2 * LBA, LBA, 1, 2 ** 40 + 5, 1);
  assert.equal(checkBlockPattern(v, 2 * LBA, LBA, 1, 2 ** 40 + 5), 1);
  buf[2 * LBA + 300]! ^= 0x10;
  assert.equal(checkBlockPattern(v, 2 * LBA, LBA, 1, 2 ** 40 + 5), BLOCK_INVALID);
  // Nearly zero is not zero.
  buf.fill(0, 3 * LBA);
  buf[4 * LBA - 1] = 1;
  assert.equal(checkBlockPattern(v, 3 * LBA, LBA, 1, 9), BLOCK_INVALID);
});

test("accepts a plain write then read, and reads of never-written blocks as zeroes", () => {
  const ver = newVerifier();
  const media = new Media(8);
  const wbuf = new Uint8Array(2 * LBA);
  ver.beginWrite(100, 2, dv(wbuf), 0);
  media.apply(0, wbuf);
  ver.completeWrite(100, 2, 0);
  const low = new Uint32Array(4);
  ver.beginRead(100, 4, low);
  assert.deepEqual([...low], [1, 1, 0, 0]);
  assert.equal(ver.completeRead(100, 4, low, 0, dv(media.snapshot(0, 4)), 0), 0);
  const r = ver.report();
  assert.equal(r.verified, true);
  assert.equal(r.ops, 2);
  assert.equal(r.reads, 1);
  assert.equal(r.writes, 1);
});

test("detects a lost acknowledged write in the final read-back (zero or older generation)", () => {
  const ver = newVerifier();
  const media = new Media(8);
  const b1 = new Uint8Array(LBA);
  const b2 = new Uint8Array(LBA);
  ver.beginWrite(100, 1, dv(b1), 0);
  media.apply(0, b1);
  ver.completeWrite(100, 1, 0);
  ver.beginWrite(100, 1, dv(b2), 0);
  ver.completeWrite(100, 1, 0); // acknowledged, but the device "forgot" it: media keeps generation 1
  ver.beginWrite(101, 1, dv(b2), 0);
  ver.completeWrite(101, 1, 0); // acknowledged, never reached the media at all
  assert.equal(ver.anyWritten(100, 2), true);
  assert.equal(ver.anyWritten(102, 6), false);
  assert.equal(ver.checkFinal(100, 8, 0, dv(media.snapshot(0, 8)), 0), 2);
  const r = ver.report();
  assert.equal(r.verified, false);
  assert.equal(r.lostWrites, 2);
  assert.equal(r.finalBlocksChecked, 2);
  assert.deepEqual(
    r.failures.map((f) => [f.kind, f.lba]),
    [
      ["lost-write", 100],
      ["lost-write", 101],
    ],
  );
});

test("detects a torn block and a misdirected block on read", () => {
  const ver = newVerifier();
  const b = new Uint8Array(2 * LBA);
  ver.beginWrite(100, 2, dv(b), 0);
  ver.completeWrite(100, 2, 0);
  const data = b.slice();
  // Block 0 torn (half zero), block 1 replaced by block 0's contents (misdirected).
  data.fill(0, LBA / 2, LBA);
  data.set(b.subarray(0, LBA), LBA);
  const low = new Uint32Array(2);
  ver.beginRead(100, 2, low);
  assert.equal(ver.completeRead(100, 2, low, 0, dv(data), 0), 2);
  assert.equal(ver.report().badReads, 2);
  assert.equal(ver.report().verified, false);
});

test("detects a stale generation: a read issued after the ack must not see older data", () => {
  const ver = newVerifier();
  const g1 = new Uint8Array(LBA);
  const g2 = new Uint8Array(LBA);
  ver.beginWrite(103, 1, dv(g1), 0);
  ver.completeWrite(103, 1, 0);
  ver.beginWrite(103, 1, dv(g2), 0);
  ver.completeWrite(103, 1, 0);
  const low = new Uint32Array(1);
  ver.beginRead(103, 1, low);
  assert.equal(ver.completeRead(103, 1, low, 0, dv(g1), 0), 1);
  // A never-acknowledged LBA reading as zero is fine; an acknowledged one reading as zero is not.
  ver.beginRead(103, 1, low);
  assert.equal(ver.completeRead(103, 1, low, 0, dv(new Uint8Array(LBA)), 0), 1);
  assert.equal(ver.report().badReads, 2);
});

test("accepts legal races: a read overlapping writes may see old, new, or since-superseded data", () => {
  const ver = newVerifier();
  const g = [new Uint8Array(LBA), new Uint8Array(LBA), new Uint8Array(LBA), new Uint8Array(LBA)];
  ver.beginWrite(104, 1, dv(g[1]!), 0);
  ver.completeWrite(104, 1, 0); // acked 1
  const low = new Uint32Array(1);
  ver.beginRead(104, 1, low); // read issued: must see ≥ 1
  ver.beginWrite(104, 1, dv(g[2]!), 0); // in flight: 2
  assert.equal(ver.completeRead(104, 1, low, 0, dv(g[1]!), 0), 0, "old data is fine");
  ver.beginRead(104, 1, low);
  assert.equal(ver.completeRead(104, 1, low, 0, dv(g[2]!), 0), 0, "unacknowledged new data is fine");
  // A read issued before writes 2 and 3 were acknowledged may return 2 even after 3 is acked.
  ver.beginRead(104, 1, low);
  ver.completeWrite(104, 1, 0);
  ver.beginWrite(104, 1, dv(g[3]!), 0);
  ver.completeWrite(104, 1, 0);
  assert.equal(ver.completeRead(104, 1, low, 0, dv(g[2]!), 0), 0);
  // A failed write may or may not have reached the media.
  const g4 = new Uint8Array(LBA);
  ver.beginWrite(104, 1, dv(g4), 0);
  ver.completeWrite(104, 1, ABORTED);
  ver.beginRead(104, 1, low);
  assert.equal(ver.completeRead(104, 1, low, 0, dv(g4), 0), 0);
  ver.beginRead(104, 1, low);
  assert.equal(ver.completeRead(104, 1, low, 0, dv(g[3]!), 0), 0);
  // Final read-back accepts both, too.
  assert.equal(ver.checkFinal(104, 1, 0, dv(g4), 0), 0);
  assert.equal(ver.checkFinal(104, 1, 0, dv(g[3]!), 0), 0);
  const r = ver.report();
  assert.equal(r.badReads, 0);
  assert.equal(r.lostWrites, 0);
  assert.equal(r.ioErrors, 1);
  assert.equal(r.verified, false, "an I/O error fails verification unless allowed");
  const lenient = new Verifier({ nsid: 1, lbaBytes: LBA, lbaStart: 0, lbaCount: 1, allowIoErrors: true });
  lenient.beginWrite(0, 1, dv(new Uint8Array(LBA)), 0);
  lenient.completeWrite(0, 1, ABORTED);
  assert.equal(lenient.report().verified, true);
});

test("detects duplicate and missing completions", () => {
  const ver = newVerifier();
  ver.commandIssued(1);
  ver.commandIssued(2);
  ver.commandIssued(300);
  assert.equal(ver.commandCompleted(1), true);
  assert.equal(ver.commandCompleted(1), false, "second completion of key 1");
  assert.equal(ver.commandCompleted(7), false, "completion for a key never issued");
  assert.throws(() => ver.commandIssued(2), VerifierError);
  ver.noteDuplicateCompletion("driver saw cid 9 twice");
  assert.equal(ver.outstanding, 2);
  assert.equal(ver.finishCompletions(), 2);
  assert.equal(ver.finishCompletions(), 0);
  const r = ver.report();
  assert.equal(r.duplicateCompletions, 3);
  assert.equal(r.missingCompletions, 2);
  assert.equal(r.verified, false);
});

test("refuses overlapping writes and out-of-range LBAs (caller bugs)", () => {
  const ver = newVerifier();
  const b = new Uint8Array(3 * LBA);
  ver.beginWrite(100, 2, dv(b), 0);
  assert.equal(ver.canWrite(101, 2), false);
  assert.equal(ver.canWrite(102, 2), true);
  assert.throws(() => ver.beginWrite(101, 2, dv(b), 0), { code: "overlapping-write" });
  ver.cancelWrite(100, 2);
  assert.equal(ver.canWrite(101, 2), true);
  assert.throws(() => ver.canWrite(99, 1), { code: "out-of-range" });
  assert.throws(() => ver.beginRead(107, 2, new Uint32Array(2)), { code: "out-of-range" });
  assert.throws(() => new Verifier({ nsid: 1, lbaBytes: 500, lbaStart: 0, lbaCount: 1 }), VerifierError);
});

type Cmd = {
  write: boolean;
  lbaIndex: number;
  nlb: number;
  buf: Uint8Array;
  low: Uint32Array;
  executed: boolean;
};

/**
 * Random schedules against a correct device — each command takes effect at one instant between its
 * submission and its completion, in any order — must always verify; the same schedule with one
 * acknowledged write dropped from the media must always be caught.
 */
test("a correct device always verifies; dropping an acknowledged write is always caught (property)", () => {
  const blocks = 6;
  const stepArb = fc.record({ kind: fc.integer({ min: 0, max: 3 }), a: fc.nat(), b: fc.nat(), c: fc.nat() });
  fc.assert(
    fc.property(fc.array(stepArb, { minLength: 1, maxLength: 120 }), fc.nat(), (steps, victimPick) => {
      const ver = new Verifier({ nsid: 3, lbaBytes: LBA, lbaStart: 50, lbaCount: blocks });
      const media = new Media(blocks);
      const pending: Cmd[] = [];
      let key = 0;
      const keys = new Map<Cmd, number>();
      const complete = (cmd: Cmd) => {
        pending.splice(pending.indexOf(cmd), 1);
        assert.equal(ver.commandCompleted(keys.get(cmd)!), true);
        if (cmd.write) ver.completeWrite(50 + cmd.lbaIndex, cmd.nlb, 0);
        else assert.equal(ver.completeRead(50 + cmd.lbaIndex, cmd.nlb, cmd.low, 0, dv(cmd.buf), 0), 0);
      };
      const execute = (cmd: Cmd) => {
        cmd.executed = true;
        if (cmd.write) media.apply(cmd.lbaIndex, cmd.buf);
        else cmd.buf.set(media.snapshot(cmd.lbaIndex, cmd.nlb));
      };
      for (const s of steps) {
        if (s.kind <= 1) {
          const nlb = 1 + (s.b % 2);
          const lbaIndex = s.a % (blocks - nlb + 1);
          const write = s.kind === 1 && ver.canWrite(50 + lbaIndex, nlb);
          const cmd: Cmd = {
            write,
            lbaIndex,
            nlb,
            buf: new Uint8Array(nlb * LBA),
            low: new Uint32Array(nlb),
            executed: false,
          };
          if (write) ver.beginWrite(50 + lbaIndex, nlb, dv(cmd.buf), 0);
          else ver.beginRead(50 + lbaIndex, nlb, cmd.low);
          keys.set(cmd, key);
          ver.commandIssued(key++);
          pending.push(cmd);
        } else if (pending.length > 0) {
          const cmd = pending[s.c % pending.length]!;
          if (!cmd.executed) execute(cmd);
          else if (s.kind === 3) complete(cmd);
        }
      }
      while (pending.length > 0) {
        const cmd = pending[0]!;
        if (!cmd.executed) execute(cmd);
        complete(cmd);
      }
      assert.equal(ver.finishCompletions(), 0);
      const finalView = dv(media.bytes);
      const snapshot = media.bytes.slice();
      assert.equal(ver.checkFinal(50, blocks, 0, finalView, 0), 0);
      const r = ver.report();
      assert.equal(r.verified, true, JSON.stringify(r.failures));

      // Now the faulty device: one acknowledged block reverts to zero (or to an older write).
      const written: number[] = [];
      for (let i = 0; i < blocks; i++)
        if (checkBlockPattern(dv(snapshot), i * LBA, LBA, 3, 50 + i) > 0) written.push(i);
      if (written.length === 0) return;
      const victim = written[victimPick % written.length]!;
      const gen = checkBlockPattern(dv(snapshot), victim * LBA, LBA, 3, 50 + victim);
      if (gen > 1) writeBlockPattern(dv(snapshot), victim * LBA, LBA, 3, 50 + victim, gen - 1);
      else snapshot.fill(0, victim * LBA, (victim + 1) * LBA);
      const again = new Verifier({ nsid: 3, lbaBytes: LBA, lbaStart: 50, lbaCount: blocks });
      // Replay the acknowledged state: the final generations are all acknowledged here.
      for (let i = 0; i < blocks; i++) {
        const g = checkBlockPattern(dv(media.bytes), i * LBA, LBA, 3, 50 + i);
        const scratch = new Uint8Array(LBA);
        for (let n = 0; n < g; n++) {
          again.beginWrite(50 + i, 1, dv(scratch), 0);
          again.completeWrite(50 + i, 1, 0);
        }
      }
      assert.equal(again.checkFinal(50, blocks, 0, dv(snapshot), 0), 1);
      assert.equal(again.report().verified, false);
    }),
    { numRuns: 300 },
  );
});
