/**
 * The TP4159 SQE builders and the windowed whole-state transfer shared by the variant driver's
 * `ControllerOps` and the host agent's `Tp4159Commands`: every parameter lands in its spec field (checked
 * with the controller's own decoders), and a state of any size is read / written in the right windows.
 * The commands' effect on a real controller is covered by the variant driver's and the agent's tests.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { CONTROLLER_STATE_HEADER_BYTES, encodeControllerStateHeader } from "../../nvme/controller-state.ts";
import {
  decodeMigrationReceive,
  decodeMigrationSend,
  MigrationReceiveSel,
  MigrationSendSel,
  SequenceIndicator,
} from "../../nvme/migration-commands.ts";
import { AdminOpcode } from "../../nvme/opcodes.ts";
import {
  getControllerStateSqe,
  migrationSendResumeSqe,
  migrationSendSuspendSqe,
  receiveWholeControllerState,
  STATE_CHUNK_BYTES,
  sendWholeControllerState,
  setControllerStateSqe,
} from "./controller-ops.ts";

const cntlid = fc.integer({ min: 0, max: 0xffff });
const index = fc.integer({ min: 0, max: 0xff });
const offset = fc.integer({ min: 0, max: 2 ** 40 }).map((n) => n * 4);

test("Suspend / Resume SQEs carry CNTLID, STYPE and DUDMQ in their spec fields", () => {
  fc.assert(
    fc.property(cntlid, fc.integer({ min: 0, max: 0xff }), fc.boolean(), (id, stype, dudmq) => {
      const s = migrationSendSuspendSqe(id, stype, dudmq);
      assert.equal(s.opc, AdminOpcode.MigrationSend);
      assert.deepEqual(decodeMigrationSend(s), {
        ok: true,
        value: { sel: MigrationSendSel.Suspend, cntlid: id, stype, dudmq, uidx: 0 },
      });
      const r = migrationSendResumeSqe(id);
      assert.deepEqual(decodeMigrationSend(r), {
        ok: true,
        value: { sel: MigrationSendSel.Resume, cntlid: id, uidx: 0 },
      });
    }),
  );
});

test("Get / Set Controller State SQEs carry CNTLID, CSVI, CSUUIDI, offset, SEQIND and the size", () => {
  fc.assert(
    fc.property(
      cntlid,
      index,
      index,
      offset,
      fc.integer({ min: 1, max: 1024 }).map((n) => n * 4),
      fc.constantFrom(0, 1, 2, 3),
      (id, csvi, csuuidi, at, bytes, seqind) => {
        const g = getControllerStateSqe(id, { csvi, csuuidi }, at, bytes);
        assert.equal(g.opc, AdminOpcode.MigrationReceive);
        assert.equal(g.dataInBytes, bytes);
        assert.deepEqual(decodeMigrationReceive(g), {
          ok: true,
          value: {
            sel: MigrationReceiveSel.GetControllerState,
            csvi,
            cntlid: id,
            csuuidi,
            csuidxp: 0,
            offset: at,
            uidx: 0,
            numd: bytes / 4 - 1,
          },
        });
        const part = new Uint8Array(bytes);
        const s = setControllerStateSqe(id, { csvi, csuuidi }, seqind, at, part);
        assert.equal(s.opc, AdminOpcode.MigrationSend);
        assert.equal(s.dataOut, part);
        const d = decodeMigrationSend(s);
        assert.deepEqual(d, {
          ok: true,
          value: {
            sel: MigrationSendSel.SetControllerState,
            seqind,
            cntlid: id,
            csvi,
            csuuidi,
            offset: at,
            uidx: 0,
            numd: bytes / 4,
          },
        });
      },
    ),
  );
});

/** A controller state of `bytes` (a whole number of dwords ≥ 48): header, then a counting pattern. */
function stateOf(bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = CONTROLLER_STATE_HEADER_BYTES; i < bytes; i++) out[i] = (i * 7) & 0xff;
  const vss = BigInt((bytes - CONTROLLER_STATE_HEADER_BYTES) / 4);
  out.set(encodeControllerStateHeader({ ver: 1, csattr: 1, nvmecss: 0n, vss }));
  return out;
}

test("a whole state of any size is read in windows: 16 KiB first, then STATE_CHUNK_BYTES, nothing past its end", async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 12, max: (3 * STATE_CHUNK_BYTES) / 4 }), async (dwords) => {
      const state = stateOf(dwords * 4);
      const windows: [number, number][] = [];
      const r = await receiveWholeControllerState(async (at, bytes) => {
        windows.push([at, bytes]);
        assert.equal(bytes % 4, 0);
        const out = new Uint8Array(bytes); // a controller returns zeros past the state's end
        out.set(state.subarray(at, at + bytes));
        return out;
      });
      assert.ok(r.ok);
      assert.deepEqual(r.value, state);
      assert.deepEqual(windows[0], [0, 16 * 1024]);
      for (const [at, bytes] of windows.slice(1)) {
        assert.ok(at < state.byteLength && bytes <= STATE_CHUNK_BYTES);
      }
    }),
    { numRuns: 40 },
  );
});

test("a header describing more than a safe integer of bytes is refused before any other read", async () => {
  const head = encodeControllerStateHeader({ ver: 1, csattr: 1, nvmecss: 2n ** 60n, vss: 0n });
  let reads = 0;
  const r = await receiveWholeControllerState(async (_at, bytes) => {
    reads++;
    const out = new Uint8Array(bytes);
    out.set(head);
    return out;
  });
  assert.equal(r.ok, false);
  assert.equal(reads, 1);
});

test("a whole state is written in order, in STATE_CHUNK_BYTES chunks, SEQIND first … last (or entire)", async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 12, max: (3 * STATE_CHUNK_BYTES) / 4 }), async (dwords) => {
      const state = stateOf(dwords * 4);
      const sent: { seqind: number; at: number; part: Uint8Array }[] = [];
      await sendWholeControllerState(state, async (seqind, at, part) => {
        sent.push({ seqind, at, part });
      });
      const count = Math.ceil(state.byteLength / STATE_CHUNK_BYTES);
      assert.equal(sent.length, count);
      sent.forEach((c, i) => {
        assert.equal(c.at, i * STATE_CHUNK_BYTES);
        assert.deepEqual(c.part, state.subarray(c.at, c.at + STATE_CHUNK_BYTES));
        const expected =
          count === 1
            ? SequenceIndicator.Entire
            : i === 0
              ? SequenceIndicator.First
              : i === count - 1
                ? SequenceIndicator.Last
                : SequenceIndicator.NotFirstNotLast;
        assert.equal(c.seqind, expected);
      });
    }),
    { numRuns: 40 },
  );
});
