import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { cqHeadDoorbell, sqTailDoorbell } from "../nvme/registers.ts";
import { encodeCqe } from "../nvme/sqe.ts";
import type { FunctionPort } from "./function-port.ts";
import { createGuestMemory } from "./guest-memory.ts";
import { doorbellNeedsEvent, QueuePair } from "./queue-pair.ts";

/** Records posted writes; nothing else is used by QueuePair. */
class RecordingPort implements FunctionPort {
  readonly writes: Array<[offset: number, value: number]> = [];
  configRead(): Promise<number> {
    return Promise.resolve(0);
  }
  configWrite(): void {}
  read32(): Promise<number> {
    return Promise.resolve(0);
  }
  read64(): Promise<bigint> {
    return Promise.resolve(0n);
  }
  write32(_bar: number, offset: number, value: number): void {
    this.writes.push([offset, value]);
  }
  write64(): void {}
  onInterrupt(): void {}
  flush(): Promise<void> {
    return Promise.resolve();
  }
}

function setup(entries = 8, slots = entries - 1, qid = 1) {
  const mem = createGuestMemory(64 * 4096);
  const port = new RecordingPort();
  const duplicates: Array<[number, number]> = [];
  const q = new QueuePair(
    port,
    mem,
    {
      qid,
      entries,
      slots,
      sqGpa: mem.allocPages(1),
      cqGpa: mem.allocPages(1),
      vector: qid,
      dstrd: 0,
      prpListPagesPerSlot: 0,
      prpListGpa: 0,
    },
    (qidSeen, cid) => duplicates.push([qidSeen, cid]),
  );
  /** What a controller does: post a CQE at its own tail with its own phase. */
  let devTail = 0;
  let devPhase = 1;
  const post = (cid: number, status = 0, sqid = qid) => {
    encodeCqe(mem.dataView, q.cqGpa + devTail * 16, 0xabc, 0, 0, sqid, cid, devPhase, status);
    devTail++;
    if (devTail === entries) {
      devTail = 0;
      devPhase ^= 1;
    }
  };
  return { mem, port, q, post, duplicates };
}

test("EventIdx rule: ring exactly when the new index passed EventIdx (u16 arithmetic)", () => {
  assert.equal(doorbellNeedsEvent(0, 1, 0), true);
  assert.equal(doorbellNeedsEvent(5, 6, 5), true);
  assert.equal(doorbellNeedsEvent(5, 5, 4), false, "controller asked to be told after 5");
  assert.equal(doorbellNeedsEvent(5, 9, 3), true);
  assert.equal(doorbellNeedsEvent(9, 9, 3), false);
  assert.equal(doorbellNeedsEvent(0xffff, 1, 0xfffe), true, "wrap-around");
  fc.assert(
    fc.property(
      fc.nat(0xffff),
      fc.nat(0xffff),
      fc.integer({ min: 1, max: 0x7fff }),
      (eventIdx, old, step) => {
        const next = (old + step) & 0xffff;
        // Crossing means eventIdx ∈ [old, next) in wrapping order.
        const crossed = ((eventIdx - old) & 0xffff) < step;
        assert.equal(doorbellNeedsEvent(eventIdx, next, old), crossed);
      },
    ),
  );
});

test("CIDs carry a generation: a repeated or stale completion is a duplicate, not a new command's", () => {
  const { q, post, duplicates } = setup(4, 2);
  const done: number[] = [];
  const a = q.allocSlot();
  const cidA1 = q.cids[a]!;
  q.commit(a, (_s, _d, cid) => done.push(cid), 0);
  post(cidA1);
  assert.equal(q.reap(), 1);
  assert.deepEqual(done, [cidA1]);
  // Reuse both slots; slot a comes back with a different CID.
  const b = q.allocSlot();
  q.commit(b, (_s, _d, cid) => done.push(cid), 0);
  const a2 = q.allocSlot();
  assert.equal(a2, a);
  const cidA2 = q.cids[a2]!;
  assert.notEqual(cidA2, cidA1);
  q.commit(a2, (_s, _d, cid) => done.push(cid), 0);
  post(cidA1); // stale duplicate of the first command
  post(cidA2);
  post(cidA2); // posted twice
  post(q.cids[b]!, 0, 9); // names another SQ
  assert.equal(q.reap(), 4);
  assert.deepEqual(done, [cidA1, cidA2]);
  assert.equal(q.duplicateCompletions, 3);
  assert.deepEqual(
    duplicates.map(([, cid]) => cid),
    [cidA1, cidA2, q.cids[b]!],
  );
  assert.equal(q.outstandingCount, 1);
});

test("never more commands than slots; the SQ doorbell carries the tail; the CQ head rings once per reap", () => {
  const { q, port, post } = setup(4);
  const slots: number[] = [];
  for (let i = 0; i < 3; i++) {
    const s = q.allocSlot();
    assert.ok(s >= 0);
    q.commit(s, () => {}, 0);
    slots.push(s);
  }
  assert.equal(q.allocSlot(), -1, "a 4-entry queue holds 3 commands");
  q.ringSq();
  q.ringSq(); // nothing new: no second write
  assert.deepEqual(port.writes, [[sqTailDoorbell(1, 0), 3]]);
  for (const s of slots) post(q.cids[s]!);
  assert.equal(q.reap(), 3);
  assert.deepEqual(port.writes[1], [cqHeadDoorbell(1, 0), 3]);
  assert.equal(q.reap(), 0);
  assert.equal(port.writes.length, 2);
});

test("ring indices wrap and the phase flips (property over long runs)", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 9 }),
      fc.array(fc.integer({ min: 1, max: 8 }), { maxLength: 40 }),
      (entries, bursts) => {
        const { q, post } = setup(entries);
        let completed = 0;
        let submitted = 0;
        for (const burst of bursts) {
          const n = Math.min(burst, q.freeSlotCount);
          const cids: number[] = [];
          for (let i = 0; i < n; i++) {
            const s = q.allocSlot();
            q.commit(s, () => completed++, 0);
            cids.push(q.cids[s]!);
          }
          submitted += n;
          for (const c of cids.reverse()) post(c);
          assert.equal(q.reap(), n);
          assert.equal(completed, submitted);
          assert.equal(q.sqTail, submitted % entries);
          assert.equal(q.cqHead, submitted % entries);
          assert.equal(q.cqPhase, Math.floor(submitted / entries) % 2 === 0 ? 1 : 0);
        }
      },
    ),
  );
});

test("shadow doorbells: value written to the buffer, MMIO only when EventIdx asks (admin always MMIO)", () => {
  const { q, port, mem } = setup(8);
  const shadowGpa = mem.allocPages(1);
  const eventIdxGpa = mem.allocPages(1);
  q.setDoorbellBuffers({ shadowGpa, eventIdxGpa });
  const sqShadow = shadowGpa + sqTailDoorbell(1, 0) - 0x1000;
  const sqEventIdx = eventIdxGpa + sqTailDoorbell(1, 0) - 0x1000;
  mem.writeU32(sqEventIdx, 0); // controller: "tell me when the tail passes 0"
  q.commit(q.allocSlot(), () => {}, 0);
  q.ringSq();
  assert.equal(mem.readU32(sqShadow), 1);
  assert.equal(port.writes.length, 1);
  q.commit(q.allocSlot(), () => {}, 0);
  q.ringSq(); // EventIdx still 0: the controller is polling the shadow value, no MMIO needed
  assert.equal(mem.readU32(sqShadow), 2);
  assert.equal(port.writes.length, 1);
  assert.equal(q.skippedDoorbells, 1);
  mem.writeU32(sqEventIdx, 2);
  q.commit(q.allocSlot(), () => {}, 0);
  q.ringSq();
  assert.equal(port.writes.length, 2);

  const admin = setup(8, 7, 0);
  admin.q.setDoorbellBuffers({ shadowGpa, eventIdxGpa });
  admin.q.commit(admin.q.allocSlot(), () => {}, 0);
  admin.q.ringSq();
  admin.q.commit(admin.q.allocSlot(), () => {}, 0);
  admin.q.ringSq();
  assert.equal(admin.port.writes.length, 2);
});

test("SQEs and shadow doorbells written by the driver are dirty-logged", () => {
  const { q, mem } = setup(8);
  mem.startDirtyLog();
  q.commit(q.allocSlot(), () => {}, 0);
  assert.deepEqual([...mem.collectDirty()], [q.sqGpa / 4096]);
  const shadowGpa = mem.allocPages(1);
  const eventIdxGpa = mem.allocPages(1);
  q.setDoorbellBuffers({ shadowGpa, eventIdxGpa });
  mem.collectDirty();
  q.commit(q.allocSlot(), () => {}, 0);
  q.ringSq();
  assert.deepEqual([...mem.collectDirty()], [q.sqGpa / 4096, shadowGpa / 4096]);
});

test("failAll completes every outstanding command once, with the given status", () => {
  const { q, post } = setup(8);
  const got: number[] = [];
  for (let i = 0; i < 3; i++) q.commit(q.allocSlot(), (s) => got.push(s), 0);
  assert.equal(q.failAll(0x371), 3);
  assert.deepEqual(got, [0x371, 0x371, 0x371]);
  assert.equal(q.outstandingCount, 0);
  post(q.cids[0]!);
  q.reap();
  assert.equal(q.duplicateCompletions, 1, "a late completion after failAll is a duplicate");
});
