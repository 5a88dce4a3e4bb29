import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { describe, it } from "node:test";
import type { DataSession } from "./data-session.ts";
import type { UserMemory } from "./device-feature.ts";
import { DirtyPageBitmap } from "./dirty-bitmap.ts";
import { vfioChannel } from "./events.ts";
import { type FakeBackendOptions, FakeMigrationBackend } from "./fake-backend.ts";
import {
  decodeMigDeviceState,
  decodePrecopyInfo,
  decodeU64,
  encodeDmaLoggingControl,
  encodeDmaLoggingReport,
  encodeDmaRanges,
  encodeMigDeviceState,
  encodePrecopyInfo,
  PRECOPY_INFO_BYTES,
} from "./feature-codec.ts";
import { supportedStates } from "./next-hop.ts";
import { MigrationPortal } from "./portal.ts";
import {
  DeviceFeature,
  Errno,
  FeatureFlag,
  MigFlag,
  MigState,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_RESET,
  VFIO_MIG_GET_PRECOPY_INFO,
} from "./states.ts";
import { VfioPortalError } from "./vfio-error.ts";

const { ERROR, STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P } = MigState;
const { GET, SET, PROBE } = FeatureFlag;
const SC = MigFlag.STOP_COPY;
const P2P = MigFlag.P2P;
const PRE = MigFlag.PRE_COPY;
const ALL = SC | P2P | PRE;
const FLAG_SETS = [SC, SC | P2P, SC | PRE, ALL];

function setup(flags: number, opts: Omit<FakeBackendOptions, "flags"> = {}) {
  const backend = new FakeMigrationBackend({ flags, ...opts });
  const logging = new DirtyPageBitmap();
  const portal = new MigrationPortal({ migration: backend, dmaLogging: logging, label: "vf1" });
  return { backend, portal, logging };
}

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const seq = (n: number, from = 0): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);
const stateReq = (s: number, fd = -1): Uint8Array => encodeMigDeviceState({ deviceState: s, dataFd: fd });

function errnoOf(r: { ok: boolean; errno?: number }): number | undefined {
  return r.ok ? undefined : r.errno;
}

async function to(portal: MigrationPortal, s: number): Promise<DataSession | undefined> {
  const r = await portal.setState(s);
  assert.ok(r.ok, `SET ${s} failed: ${JSON.stringify(r)}`);
  return r.session;
}

/** Reads until a non-data answer; returns the concatenated data and the final answer. */
async function drain(session: DataSession, chunk: number) {
  const parts: number[] = [];
  for (;;) {
    const r = await session.read(chunk);
    if (!r.ok || r.bytes.length === 0) return { data: Uint8Array.from(parts), last: r };
    parts.push(...r.bytes);
  }
}

/** A flat caller memory for kernel-dialect user pointers: [base, base + size). */
function userMemory(base: bigint, size: number): UserMemory & { mem: Uint8Array } {
  const mem = new Uint8Array(size);
  return {
    mem,
    view(address, lengthBytes) {
      const off = Number(address - base);
      if (address < base || off + lengthBytes > size) return undefined;
      return mem.subarray(off, off + lengthBytes);
    },
  };
}

describe("uAPI numbers", () => {
  it("ioctl numbers, feature bits and states", () => {
    assert.equal(VFIO_DEVICE_RESET, 0x3b6f);
    assert.equal(VFIO_DEVICE_FEATURE, 0x3b75);
    assert.equal(VFIO_MIG_GET_PRECOPY_INFO, 0x3b79);
    assert.deepEqual([GET, SET, PROBE], [0x10000, 0x20000, 0x40000]);
    assert.deepEqual(
      [ERROR, STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P],
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
    assert.deepEqual([SC, P2P, PRE], [1, 2, 4]);
    assert.deepEqual(
      [
        DeviceFeature.MIGRATION,
        DeviceFeature.MIG_DEVICE_STATE,
        DeviceFeature.DMA_LOGGING_START,
        DeviceFeature.DMA_LOGGING_STOP,
        DeviceFeature.DMA_LOGGING_REPORT,
        DeviceFeature.MIG_DATA_SIZE,
      ],
      [1, 2, 6, 7, 8, 9],
    );
  });

  it("struct sizes", () => {
    assert.equal(stateReq(RUNNING).length, 8);
    assert.equal(encodePrecopyInfo({ argsz: 24, flags: 0, initialBytes: 0n, dirtyBytes: 0n }).length, 24);
    const c = { pageSize: 4096n, numRanges: 1, rangesPtr: 0n };
    assert.equal(encodeDmaLoggingControl(c, "kernel").length, 24);
    assert.equal(encodeDmaLoggingControl(c, "vfio-user").length, 16);
    assert.equal(encodeDmaRanges([{ iova: 0n, length: 1n }]).length, 16);
    const r = { iova: 0n, length: 4096n, pageSize: 4096n, bitmapPtr: 0n };
    assert.equal(encodeDmaLoggingReport(r, "kernel").length, 32);
    assert.equal(encodeDmaLoggingReport(r, "vfio-user").length, 24);
  });

  it("refuses a backend without STOP_COPY", () => {
    assert.throws(
      () => new MigrationPortal({ migration: new FakeMigrationBackend({ flags: P2P | PRE }) }),
      (e) => VfioPortalError.is(e, "invalid-backend"),
    );
  });
});

describe("DEVICE_FEATURE envelope (§1.2)", () => {
  const MIG_STATE = DeviceFeature.MIG_DEVICE_STATE;

  it("argsz below the 8-byte header → EINVAL", async () => {
    const { portal } = setup(SC);
    for (const argsz of [0, 7]) {
      const r = await portal.deviceFeature(GET | DeviceFeature.MIGRATION, new Uint8Array(8), { argsz });
      assert.equal(errnoOf(r), Errno.EINVAL);
    }
  });

  it("flag bits outside {index, GET, SET, PROBE} → EINVAL", async () => {
    const { portal } = setup(SC);
    for (const extra of [1 << 19, 1 << 24, 0x8000_0000]) {
      const r = await portal.deviceFeature((GET | DeviceFeature.MIGRATION | extra) >>> 0, new Uint8Array(8));
      assert.equal(errnoOf(r), Errno.EINVAL, `bit ${extra}`);
    }
  });

  it("GET and SET together without PROBE → EINVAL, and nothing runs", async () => {
    const { portal, backend } = setup(SC);
    const r = await portal.deviceFeature(GET | SET | MIG_STATE, stateReq(STOP));
    assert.equal(errnoOf(r), Errno.EINVAL);
    assert.equal(backend.calls.length, 0);
  });

  it("unknown feature index → EINVAL", async () => {
    const { portal } = setup(SC);
    for (const index of [0, 3, 4, 5, 10, 11, 12, 0xffff]) {
      const r = await portal.deviceFeature(GET | index, new Uint8Array(64));
      assert.equal(errnoOf(r), Errno.EINVAL, `index ${index}`);
    }
  });

  it("migration feature without migration ops / logging feature without logging ops → ENOTTY (even PROBE)", async () => {
    const noMig = new MigrationPortal({ dmaLogging: new DirtyPageBitmap() });
    for (const f of [DeviceFeature.MIGRATION, DeviceFeature.MIG_DEVICE_STATE, DeviceFeature.MIG_DATA_SIZE]) {
      assert.equal(errnoOf(await noMig.deviceFeature(GET | f, new Uint8Array(8))), Errno.ENOTTY);
      assert.equal(errnoOf(await noMig.deviceFeature(PROBE | GET | f, new Uint8Array(8))), Errno.ENOTTY);
      // ENOTTY comes before the per-feature op check.
      assert.equal(errnoOf(await noMig.deviceFeature(SET | f, new Uint8Array(8))), Errno.ENOTTY);
    }
    assert.equal(errnoOf(await noMig.setState(STOP)), Errno.ENOTTY);
    assert.equal(errnoOf(await noMig.dataSize()), Errno.ENOTTY);
    const noLog = new MigrationPortal({ migration: new FakeMigrationBackend({ flags: SC }) });
    for (const f of [DeviceFeature.DMA_LOGGING_START, DeviceFeature.DMA_LOGGING_STOP]) {
      assert.equal(errnoOf(await noLog.deviceFeature(SET | f, new Uint8Array(32))), Errno.ENOTTY);
    }
    assert.equal(
      errnoOf(await noLog.deviceFeature(GET | DeviceFeature.DMA_LOGGING_REPORT, new Uint8Array(40))),
      Errno.ENOTTY,
    );
    assert.equal(
      errnoOf(await noLog.deviceFeature(PROBE | SET | DeviceFeature.DMA_LOGGING_START, new Uint8Array(0))),
      Errno.ENOTTY,
    );
  });

  it("GET/SET the feature does not support → EINVAL (also under PROBE)", async () => {
    const { portal } = setup(SC);
    const cases: Array<[number, number]> = [
      [SET, DeviceFeature.MIGRATION],
      [SET, DeviceFeature.MIG_DATA_SIZE],
      [GET, DeviceFeature.DMA_LOGGING_START],
      [GET, DeviceFeature.DMA_LOGGING_STOP],
      [SET, DeviceFeature.DMA_LOGGING_REPORT],
      [PROBE | SET, DeviceFeature.MIGRATION],
      [PROBE | GET | SET, DeviceFeature.DMA_LOGGING_START],
    ];
    for (const [op, f] of cases) {
      assert.equal(
        errnoOf(await portal.deviceFeature(op | f, new Uint8Array(64))),
        Errno.EINVAL,
        `${op} ${f}`,
      );
    }
  });

  it("PROBE succeeds and executes nothing (before the size check), echoing the payload", async () => {
    const { portal, backend, logging } = setup(ALL);
    const p1 = await portal.deviceFeature(PROBE | SET | MIG_STATE, stateReq(STOP));
    assert.ok(p1.ok);
    assert.equal(hex(p1.reply), hex(stateReq(STOP)));
    const p2 = await portal.deviceFeature(PROBE | GET | SET | MIG_STATE, new Uint8Array(0));
    assert.ok(p2.ok, "GET|SET allowed with PROBE; argsz not checked");
    const p3 = await portal.deviceFeature(PROBE | SET | DeviceFeature.DMA_LOGGING_START, new Uint8Array(0));
    assert.ok(p3.ok, "QEMU's device dirty-tracking detection");
    const p4 = await portal.deviceFeature(PROBE | DeviceFeature.MIGRATION, new Uint8Array(0));
    assert.ok(p4.ok, "PROBE alone");
    assert.equal(portal.getState(), RUNNING);
    assert.equal(backend.calls.length, 0);
    assert.equal(logging.active, false);
  });

  it("neither GET nor SET without PROBE → EINVAL", async () => {
    const { portal } = setup(SC);
    assert.equal(errnoOf(await portal.deviceFeature(MIG_STATE, stateReq(STOP))), Errno.EINVAL);
  });

  it("payload (argsz − 8) below the feature minimum → EINVAL", async () => {
    const { portal, backend } = setup(SC);
    const cases: Array<[number, number]> = [
      [GET | DeviceFeature.MIGRATION, 7],
      [SET | MIG_STATE, 4],
      [GET | MIG_STATE, 7],
      [GET | DeviceFeature.MIG_DATA_SIZE, 0],
      [SET | DeviceFeature.DMA_LOGGING_START, 15],
      [GET | DeviceFeature.DMA_LOGGING_REPORT, 23],
    ];
    for (const [flags, n] of cases) {
      assert.equal(errnoOf(await portal.deviceFeature(flags, new Uint8Array(n))), Errno.EINVAL, `${flags}`);
    }
    // argsz is what counts, not the buffer handed over.
    const r = await portal.deviceFeature(SET | MIG_STATE, stateReq(STOP), { argsz: 8 + 4 });
    assert.equal(errnoOf(r), Errno.EINVAL);
    // kernel dialect minima are larger
    const k1 = await portal.deviceFeature(SET | DeviceFeature.DMA_LOGGING_START, new Uint8Array(16), {
      dialect: "kernel",
    });
    assert.equal(errnoOf(k1), Errno.EINVAL);
    const k2 = await portal.deviceFeature(GET | DeviceFeature.DMA_LOGGING_REPORT, new Uint8Array(24), {
      dialect: "kernel",
    });
    assert.equal(errnoOf(k2), Errno.EINVAL);
    assert.equal(backend.calls.length, 0);
  });

  it("every rejection is a named event on nvmig:vfio", async () => {
    const { portal } = setup(SC);
    const seen: unknown[] = [];
    const on = (m: unknown): void => {
      seen.push(m);
    };
    subscribe(vfioChannel.name, on);
    try {
      await portal.deviceFeature(GET | 10, new Uint8Array(8));
    } finally {
      unsubscribe(vfioChannel.name, on);
    }
    assert.deepEqual(seen, [
      {
        event: "feature.rejected",
        fn: "vf1",
        flags: GET | 10,
        argsz: 16,
        errno: Errno.EINVAL,
        reason: "unknown feature 10",
      },
    ]);
  });

  it("GET MIGRATION and GET MIG_DATA_SIZE payloads byte-exact", async () => {
    for (const flags of FLAG_SETS) {
      const { portal } = setup(flags);
      const r = await portal.deviceFeature(GET | DeviceFeature.MIGRATION, new Uint8Array(8));
      assert.ok(r.ok);
      assert.equal(hex(r.reply), hex(bytes(flags, 0, 0, 0, 0, 0, 0, 0)));
    }
    const { portal, backend } = setup(SC);
    backend.stopCopyLength = 0x1_0000_0001n;
    const r = await portal.deviceFeature(GET | DeviceFeature.MIG_DATA_SIZE, new Uint8Array(8));
    assert.ok(r.ok);
    assert.equal(hex(r.reply), "0100000001000000");
  });
});

describe("MIG_DEVICE_STATE (§1.6, §1.7)", () => {
  it("GET returns the state with data_fd −1", async () => {
    const { portal } = setup(SC);
    const r = await portal.deviceFeature(GET | DeviceFeature.MIG_DEVICE_STATE, new Uint8Array(8));
    assert.ok(r.ok);
    assert.equal(hex(r.reply), "02000000ffffffff");
  });

  it("SET to the current state: success, no work, no session", async () => {
    for (const flags of FLAG_SETS) {
      for (const s of supportedStates(flags)) {
        const { portal, backend } = setup(flags);
        await to(portal, s);
        const calls = backend.calls.length;
        const session = portal.session;
        const r = await portal.setState(s);
        assert.deepEqual(r, { ok: true });
        assert.equal(backend.calls.length, calls);
        assert.equal(portal.session, session);
      }
    }
  });

  it("vfio-user SET PRE_COPY: the reply equals the request byte for byte", async () => {
    const { portal } = setup(SC | PRE);
    const req = Buffer.from("06000000ffffffff", "hex");
    const r = await portal.deviceFeature(SET | DeviceFeature.MIG_DEVICE_STATE, req);
    assert.ok(r.ok);
    assert.equal(hex(r.reply), hex(req));
    assert.equal(r.session?.kind, "saving");
    assert.equal(portal.getState(), PRE_COPY);
  });

  it("the caller chooses the data_fd written back; only a SET that opened a session gets one", async () => {
    const { portal } = setup(SC);
    const dataFdFor = (s: DataSession): number => 100 + s.id;
    const r1 = await portal.deviceFeature(SET | DeviceFeature.MIG_DEVICE_STATE, stateReq(STOP), {
      dataFdFor,
    });
    assert.ok(r1.ok);
    assert.deepEqual(decodeMigDeviceState(r1.reply), { deviceState: STOP, dataFd: -1 });
    const r2 = await portal.deviceFeature(SET | DeviceFeature.MIG_DEVICE_STATE, stateReq(STOP_COPY), {
      dataFdFor,
    });
    assert.ok(r2.ok && r2.session);
    assert.deepEqual(decodeMigDeviceState(r2.reply), { deviceState: STOP_COPY, dataFd: 100 + r2.session.id });
  });

  it("a SET walks the path and returns a session iff the last arc creates one", async () => {
    const { portal, backend } = setup(SC);
    const r = await portal.setState(STOP_COPY);
    assert.ok(r.ok);
    assert.equal(r.session?.kind, "saving");
    assert.deepEqual(backend.arcs, [
      [RUNNING, STOP],
      [STOP, STOP_COPY],
    ]);
    const back = await portal.setState(RUNNING);
    assert.deepEqual(back, { ok: true });
    assert.equal(r.session.alive, false, "leaving the saving group ends the session");
  });

  it("PRE_COPY → STOP_COPY continues the same session (no new one)", async () => {
    for (const flags of [SC | PRE, ALL]) {
      const { portal } = setup(flags, { precopyBytes: seq(10), stopCopyBytes: seq(5, 100) });
      const s = await to(portal, PRE_COPY);
      assert.ok(s);
      const r = await portal.setState(STOP_COPY);
      assert.deepEqual(r, { ok: true });
      assert.equal(portal.session, s);
      assert.ok(s.alive);
      // the same handle now serves the rest of the pre-copy data and the final state
      const { data, last } = await drain(s, 4);
      assert.equal(hex(data), hex(Uint8Array.from([...seq(10), ...seq(5, 100)])));
      assert.deepEqual(last, { ok: true, bytes: new Uint8Array(0) });
    }
  });

  it("failure mid-path returns the reached state; the wire reply echoes the request with data_fd −1", async () => {
    const { portal, backend } = setup(SC | P2P);
    backend.failArc.set("STOP>STOP_COPY", { errno: Errno.EIO, deviceError: false });
    const r = await portal.deviceFeature(SET | DeviceFeature.MIG_DEVICE_STATE, stateReq(STOP_COPY, 7));
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.equal(r.errno, Errno.EIO);
    assert.equal(r.reachedState, STOP);
    assert.ok(r.reply);
    assert.deepEqual(decodeMigDeviceState(r.reply), { deviceState: STOP_COPY, dataFd: -1 });
    assert.equal(portal.getState(), STOP);
    assert.equal(portal.session, undefined);
    assert.deepEqual(backend.arcs, [
      [RUNNING, RUNNING_P2P],
      [RUNNING_P2P, STOP],
    ]);
  });

  it("a failing arc that loses the device → ERROR; from ERROR every SET is EINVAL; only reset leaves", async () => {
    const { portal, backend } = setup(SC | PRE, { precopyBytes: seq(4) });
    const s = await to(portal, PRE_COPY);
    backend.failNext.push({ errno: Errno.EIO, deviceError: true });
    const r = await portal.setState(STOP_COPY);
    assert.deepEqual(r, { ok: false, errno: Errno.EIO, reachedState: ERROR });
    assert.equal(portal.getState(), ERROR);
    assert.equal(s?.alive, false, "ERROR kills the session");
    assert.deepEqual(await s?.read(4), { ok: false, errno: Errno.ENODEV });
    const calls = backend.calls.length;
    for (const t of [ERROR, STOP, RUNNING, STOP_COPY, RESUMING, PRE_COPY, 8]) {
      assert.deepEqual(await portal.setState(t), { ok: false, errno: Errno.EINVAL, reachedState: ERROR });
    }
    assert.equal(backend.calls.length, calls, "no arc from ERROR");
    await portal.reset();
    assert.equal(portal.getState(), RUNNING);
    assert.ok((await portal.setState(STOP)).ok);
  });

  it("ERROR, unsupported and out-of-range targets → EINVAL with nothing done", async () => {
    const { portal, backend } = setup(SC);
    for (const t of [ERROR, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P, 8, 0xffff_ffff, -1]) {
      assert.deepEqual(await portal.setState(t), { ok: false, errno: Errno.EINVAL, reachedState: RUNNING });
    }
    const w = await portal.deviceFeature(
      SET | DeviceFeature.MIG_DEVICE_STATE,
      Buffer.from("ffffffffffffffff", "hex"),
    );
    assert.equal(errnoOf(w), Errno.EINVAL);
    assert.equal(backend.calls.length, 0);
  });

  it("STOP_COPY → PRE_COPY(_P2P): EINVAL, state and session untouched", async () => {
    const { portal, backend } = setup(ALL, { stopCopyBytes: seq(8) });
    const s = await to(portal, STOP_COPY);
    const calls = backend.calls.length;
    for (const t of [PRE_COPY, PRE_COPY_P2P]) {
      assert.deepEqual(await portal.setState(t), { ok: false, errno: Errno.EINVAL, reachedState: STOP_COPY });
    }
    assert.equal(backend.calls.length, calls);
    assert.ok(s?.alive);
    assert.deepEqual(await s.read(8), { ok: true, bytes: seq(8) });
  });

  it("RESUMING → STOP commits first; a failed commit fails the SET and stays in RESUMING", async () => {
    const { portal, backend } = setup(SC, { expectResume: seq(6) });
    const s = await to(portal, RESUMING);
    assert.equal(s?.kind, "resuming");
    assert.deepEqual(await portal.writeData(seq(3)), { ok: true, written: 3 });
    const bad = await portal.setState(RUNNING);
    assert.deepEqual(bad, { ok: false, errno: Errno.EINVAL, reachedState: RESUMING });
    assert.ok(s?.alive, "still loading; only reset aborts");
    assert.deepEqual(await s.write(seq(3, 3)), { ok: true, written: 3 });
    const n = backend.calls.length;
    assert.deepEqual(await portal.setState(RUNNING), { ok: true });
    assert.deepEqual(backend.calls.slice(n), [
      "commit",
      "arc RESUMING>STOP",
      "close resuming",
      "arc STOP>RUNNING",
    ]);
    assert.equal(s.alive, false);
    assert.deepEqual(await s.write(seq(1)), { ok: false, errno: Errno.ENODEV });
  });

  it("a commit failure that loses the device → ERROR", async () => {
    const { portal, backend } = setup(SC);
    const s = await to(portal, RESUMING);
    backend.commitFailure = { errno: Errno.EIO, deviceError: true };
    assert.deepEqual(await portal.setState(STOP), { ok: false, errno: Errno.EIO, reachedState: ERROR });
    assert.equal(s?.alive, false);
  });

  it("concurrent SETs are serialized: the backend never sees overlapping calls", async () => {
    const { portal, backend } = setup(ALL);
    const waiting = backend.hold();
    const a = portal.setState(STOP_COPY);
    await waiting;
    const b = portal.setState(RUNNING);
    const c = portal.readState();
    backend.release();
    const [ra, rb, rc] = await Promise.all([a, b, c]);
    assert.ok(ra.ok && ra.session);
    assert.deepEqual(rb, { ok: true });
    assert.equal(rc, RUNNING, "GET waits for queued SETs");
    assert.deepEqual(
      backend.arcs.map(([f, t]) => `${f}>${t}`),
      ["2>5", "5>1", "1>3", "3>1", "1>5", "5>2"],
    );
  });

  it("a backend that breaks the contract is our bug: it throws and the device is in ERROR", async () => {
    const backend = new FakeMigrationBackend({ flags: SC });
    backend.arc = async () => ({ ok: true }); // no session on STOP → STOP_COPY
    const portal = new MigrationPortal({ migration: backend });
    await assert.rejects(portal.setState(STOP_COPY), (e) => VfioPortalError.is(e, "backend-contract"));
    assert.equal(portal.getState(), ERROR);
    const thrower = new FakeMigrationBackend({ flags: SC });
    thrower.arc = () => {
      throw new Error("boom");
    };
    const p2 = new MigrationPortal({ migration: thrower });
    await assert.rejects(p2.setState(STOP), (e) => VfioPortalError.is(e, "backend-threw"));
    assert.equal(p2.getState(), ERROR);
    await p2.reset();
    assert.equal(p2.getState(), RUNNING, "the lock is free again after a throw");
  });
});

describe("data sessions (§1.9, §1.10)", () => {
  it("PRE_COPY: bytes, then ENOMSG at temporary EOS, then more when state is dirtied", async () => {
    for (const flags of [SC | PRE, ALL]) {
      const { portal, backend } = setup(flags, { precopyBytes: seq(10) });
      const s = await to(portal, PRE_COPY);
      assert.ok(s);
      const { data, last } = await drain(s, 4);
      assert.equal(hex(data), hex(seq(10)));
      assert.deepEqual(last, { ok: false, errno: Errno.ENOMSG });
      assert.deepEqual(await portal.readData(4), { ok: false, errno: Errno.ENOMSG });
      backend.currentSaving?.addDirty(3);
      assert.deepEqual(await portal.readData(4), { ok: true, bytes: new Uint8Array(3).fill(0xdd) });
      if (flags & P2P) {
        await to(portal, PRE_COPY_P2P);
        assert.deepEqual(await s.read(4), { ok: false, errno: Errno.ENOMSG }, "PRE_COPY_P2P too");
      }
    }
  });

  it("STOP_COPY: EAGAIN while not ready, the bytes, then 0 forever without asking the driver; never ENOMSG", async () => {
    const { portal, backend } = setup(SC, { stopCopyBytes: seq(9), stopCopyNotReady: 2 });
    const s = await to(portal, STOP_COPY);
    assert.ok(s);
    assert.deepEqual(await s.read(16), { ok: false, errno: Errno.EAGAIN });
    assert.deepEqual(await portal.readData(16), { ok: false, errno: Errno.EAGAIN });
    assert.deepEqual(await s.read(5), { ok: true, bytes: seq(5) });
    assert.deepEqual(await s.read(5), { ok: true, bytes: seq(4, 5) });
    const fake = backend.saving[0]!;
    assert.deepEqual(await s.read(5), { ok: true, bytes: new Uint8Array(0) });
    const reads = fake.reads;
    for (let i = 0; i < 3; i++) assert.deepEqual(await s.read(5), { ok: true, bytes: new Uint8Array(0) });
    assert.equal(fake.reads, reads, "permanent EOS is remembered");
  });

  it("positional I/O → ESPIPE; wrong direction → EBADF; bad sizes → EINVAL; 0 bytes → 0", async () => {
    const { portal } = setup(SC, { stopCopyBytes: seq(4) });
    const s = await to(portal, STOP_COPY);
    assert.ok(s);
    assert.deepEqual(await s.read(4, 0n), { ok: false, errno: Errno.ESPIPE });
    assert.deepEqual(await s.write(seq(1)), { ok: false, errno: Errno.EBADF });
    for (const n of [-1, 1.5, Number.NaN])
      assert.deepEqual(await s.read(n), { ok: false, errno: Errno.EINVAL });
    assert.deepEqual(await s.read(0), { ok: true, bytes: new Uint8Array(0) });
    assert.deepEqual(await s.read(4), { ok: true, bytes: seq(4) }, "a 0-byte read is not EOS");
    await to(portal, STOP);
    const r = await to(portal, RESUMING);
    assert.ok(r);
    assert.deepEqual(await r.read(4), { ok: false, errno: Errno.EBADF });
    assert.deepEqual(await r.write(seq(1), 0n), { ok: false, errno: Errno.ESPIPE });
    assert.deepEqual(await r.write(new Uint8Array(0)), { ok: true, written: 0 });
  });

  it("no session: portal reads/writes → EINVAL; a dead handle → ENODEV", async () => {
    const { portal } = setup(SC | PRE, { precopyBytes: seq(4) });
    assert.deepEqual(await portal.readData(4), { ok: false, errno: Errno.EINVAL });
    assert.deepEqual(await portal.writeData(seq(1)), { ok: false, errno: Errno.EINVAL });
    const s = await to(portal, PRE_COPY);
    assert.deepEqual(
      await portal.writeData(seq(1)),
      { ok: false, errno: Errno.EINVAL },
      "saving session is read-only",
    );
    await to(portal, RUNNING);
    assert.deepEqual(await s?.read(4), { ok: false, errno: Errno.ENODEV });
    assert.deepEqual(await portal.readData(4), { ok: false, errno: Errno.EINVAL });
    await to(portal, RESUMING);
    assert.deepEqual(
      await portal.readData(4),
      { ok: false, errno: Errno.EINVAL },
      "resuming session is write-only",
    );
    // a new session does not revive the old handle
    const s2 = await to(portal, STOP);
    assert.equal(s2, undefined);
    const s3 = await to(portal, STOP_COPY);
    assert.notEqual(s3?.id, s?.id);
    assert.deepEqual(await s?.read(4), { ok: false, errno: Errno.ENODEV });
  });

  it("resuming writes reach the driver in order; driver refusals pass through", async () => {
    const { portal, backend } = setup(SC, { resumeLimitBytes: 8 });
    const s = await to(portal, RESUMING);
    const buf = seq(5);
    assert.deepEqual(await portal.writeData(buf), { ok: true, written: 5 });
    buf.fill(0); // the caller may reuse its buffer
    assert.deepEqual(await s?.write(seq(3, 5)), { ok: true, written: 3 });
    assert.deepEqual(await s?.write(seq(1)), { ok: false, errno: Errno.ENOMEM });
    assert.equal(hex(backend.resuming[0]!.received), hex(seq(8)));
  });

  it("PRECOPY_INFO: sizes in PRE_COPY*, EINVAL elsewhere, ENOTTY for other commands, argsz < 24 → EINVAL", async () => {
    const { portal, backend } = setup(ALL, { precopyBytes: seq(10), stopCopyBytes: seq(2) });
    assert.deepEqual(await portal.precopyInfo(), { ok: false, errno: Errno.EINVAL }, "RUNNING");
    const s = await to(portal, PRE_COPY);
    assert.ok(s);
    assert.deepEqual(await s.precopyInfo(), { ok: true, initialBytes: 10n, dirtyBytes: 0n });
    await s.read(4);
    assert.deepEqual(
      await portal.precopyInfo(),
      { ok: true, initialBytes: 6n, dirtyBytes: 0n },
      "initial decreases",
    );
    await s.read(6);
    backend.currentSaving?.addDirty(7);
    await to(portal, PRE_COPY_P2P);
    const arg = encodePrecopyInfo({ argsz: 24, flags: 0xabcd, initialBytes: 99n, dirtyBytes: 99n });
    const io = await s.ioctl(VFIO_MIG_GET_PRECOPY_INFO, arg);
    assert.ok(io.ok);
    assert.equal(io.reply.length, PRECOPY_INFO_BYTES);
    assert.deepEqual(decodePrecopyInfo(io.reply), {
      argsz: 24,
      flags: 0xabcd,
      initialBytes: 0n,
      dirtyBytes: 7n,
    });
    assert.deepEqual(await s.ioctl(VFIO_MIG_GET_PRECOPY_INFO + 1, arg), { ok: false, errno: Errno.ENOTTY });
    assert.deepEqual(await s.ioctl(VFIO_DEVICE_FEATURE, arg), { ok: false, errno: Errno.ENOTTY });
    const short = encodePrecopyInfo({ argsz: 23, flags: 0, initialBytes: 0n, dirtyBytes: 0n });
    assert.deepEqual(await s.ioctl(VFIO_MIG_GET_PRECOPY_INFO, short), { ok: false, errno: Errno.EINVAL });
    await to(portal, STOP_COPY);
    assert.ok(s.alive);
    assert.deepEqual(await s.precopyInfo(), { ok: false, errno: Errno.EINVAL }, "STOP_COPY");
    assert.deepEqual(await s.ioctl(VFIO_MIG_GET_PRECOPY_INFO, arg), { ok: false, errno: Errno.EINVAL });
    await to(portal, STOP);
    const r = await to(portal, RESUMING);
    assert.deepEqual(await r?.ioctl(VFIO_MIG_GET_PRECOPY_INFO, arg), { ok: false, errno: Errno.ENOTTY });
  });

  it("PRECOPY_INFO on a dead handle while a new pre-copy runs → ENODEV", async () => {
    const { portal } = setup(SC | PRE, { precopyBytes: seq(4) });
    const old = await to(portal, PRE_COPY);
    await to(portal, RUNNING);
    await to(portal, PRE_COPY);
    assert.deepEqual(await old?.precopyInfo(), { ok: false, errno: Errno.ENODEV });
  });

  it("MIG_DATA_SIZE answers in every state", async () => {
    for (const flags of FLAG_SETS) {
      for (const s of supportedStates(flags)) {
        const { portal, backend } = setup(flags);
        backend.stopCopyLength = 12345n;
        await to(portal, s);
        assert.deepEqual(await portal.dataSize(), { ok: true, stopCopyLength: 12345n }, `state ${s}`);
      }
    }
  });
});

describe("DMA logging (§1.11)", () => {
  const START = SET | DeviceFeature.DMA_LOGGING_START;
  const STOP_F = SET | DeviceFeature.DMA_LOGGING_STOP;
  const REPORT = GET | DeviceFeature.DMA_LOGGING_REPORT;
  const range = (iova: bigint, length: bigint) => ({ iova, length });

  function startPayload(pageSize: bigint, ranges: Array<{ iova: bigint; length: bigint }>): Uint8Array {
    const head = encodeDmaLoggingControl({ pageSize, numRanges: ranges.length, rangesPtr: 0n }, "vfio-user");
    return Uint8Array.from([...head, ...encodeDmaRanges(ranges)]);
  }

  it("START validation: 0 ranges, > 256, alignment, zero length, overflow, overlap", async () => {
    const { portal, logging } = setup(SC);
    const P = 4096n;
    const cases: Array<[string, Array<{ iova: bigint; length: bigint }>, bigint, number]> = [
      ["no ranges", [], P, Errno.EINVAL],
      ["257 ranges", Array.from({ length: 257 }, (_, i) => range(BigInt(i) * P, P)), P, Errno.E2BIG],
      ["iova not aligned", [range(512n, P)], P, Errno.EINVAL],
      ["length not aligned", [range(0n, P + 1n)], P, Errno.EINVAL],
      ["zero length", [range(0n, 0n)], P, Errno.EINVAL],
      ["page size not a power of two", [range(0n, 3n * P)], 3n * P, Errno.EINVAL],
      ["page size 0", [range(0n, P)], 0n, Errno.EINVAL],
      ["iova + length wraps u64", [range((1n << 64n) - P, P)], P, Errno.EOVERFLOW],
      ["overlap", [range(0n, 4n * P), range(3n * P, P)], P, Errno.EINVAL],
      ["overlap, reversed order", [range(8n * P, P), range(0n, 9n * P)], P, Errno.EINVAL],
      ["first bad range decides", [range(1n, P), range((1n << 64n) - P, P)], P, Errno.EINVAL],
    ];
    for (const [what, ranges, pageSize, errno] of cases) {
      assert.deepEqual(await portal.dmaLoggingStart(ranges, pageSize), { ok: false, errno }, what);
      if (ranges.length > 0 && ranges.length <= 256) {
        const w = await portal.deviceFeature(START, startPayload(pageSize, ranges));
        assert.equal(errnoOf(w), errno, `wire: ${what}`);
      }
    }
    assert.equal(logging.active, false);
    // 256 adjacent ranges are fine; the limit is a count.
    const ok = await portal.dmaLoggingStart(
      Array.from({ length: 256 }, (_, i) => range(BigInt(i) * P, P)),
      P,
    );
    assert.deepEqual(ok, { ok: true, pageSize: P });
    assert.deepEqual(
      await portal.dmaLoggingStart([range(0n, P)], P),
      { ok: false, errno: Errno.EBUSY },
      "double start",
    );
    assert.deepEqual(await portal.dmaLoggingStop(), { ok: true });
    assert.deepEqual(await portal.dmaLoggingStop(), { ok: true }, "STOP when stopped is a no-op");
    assert.ok((await portal.dmaLoggingStart([range(0n, P)], P)).ok, "start again after stop");
  });

  it("START over the wire: the chosen page size is written back; the vfio-user 0-range form logs everything", async () => {
    const { portal, logging } = setup(SC);
    const r = await portal.deviceFeature(START, startPayload(512n, [range(0n, 8192n)]));
    assert.ok(r.ok);
    assert.equal(decodeU64(r.reply), 4096n, "hint 512 → granularity 4096");
    assert.equal(r.reply.length, 32);
    assert.equal(hex(r.reply.subarray(8)), hex(startPayload(512n, [range(0n, 8192n)]).subarray(8)));
    assert.ok((await portal.deviceFeature(STOP_F, new Uint8Array(0))).ok);
    assert.equal(logging.active, false);
    // libvfio-user's client: START flags 0x00020006, argsz 24, page 4096, 0 ranges
    const all = await portal.deviceFeature(0x0002_0006, startPayload(4096n, []));
    assert.ok(all.ok);
    logging.logWrite(0x7000_0000, 1);
    const bm = new Uint8Array(8);
    assert.ok((await portal.dmaLoggingReport(0x7000_0000n, 4096n, 4096n, bm)).ok);
    assert.equal(bm[0], 1);
    const k = await portal.deviceFeature(START, startPayload(4096n, []), { dialect: "kernel" });
    assert.equal(errnoOf(k), Errno.EINVAL, "kernel: num_ranges 0 is EINVAL (checked before EBUSY)");
  });

  it("kernel dialect: ranges and bitmap through user pointers; EFAULT when unreachable", async () => {
    const { portal, logging } = setup(SC);
    const mem = userMemory(0x1000n, 4096);
    mem.mem.set(encodeDmaRanges([range(0n, 1n << 20n)]), 0);
    const ctl = encodeDmaLoggingControl({ pageSize: 4096n, numRanges: 1, rangesPtr: 0x1000n }, "kernel");
    assert.equal(errnoOf(await portal.deviceFeature(START, ctl, { dialect: "kernel" })), Errno.EFAULT);
    const r = await portal.deviceFeature(START, ctl, { dialect: "kernel", userMemory: mem });
    assert.ok(r.ok);
    logging.logWrite(65 * 4096 + 10, 1); // page 65 → word 1, bit 1 → byte 8, bit 1
    const bitmapPtr = 0x1800n;
    mem.mem.fill(0, 0x800, 0x800 + 32);
    mem.mem[0x800] = 0x80; // a bit the caller set itself stays set
    const rep = encodeDmaLoggingReport(
      { iova: 0n, length: 256n * 4096n, pageSize: 4096n, bitmapPtr },
      "kernel",
    );
    const got = await portal.deviceFeature(REPORT, rep, { dialect: "kernel", userMemory: mem });
    assert.ok(got.ok);
    assert.equal(hex(got.reply), hex(rep), "the report struct is not modified");
    assert.equal(hex(mem.mem.subarray(0x800, 0x800 + 32)), `80000000000000000200${"00".repeat(22)}`);
    const far = encodeDmaLoggingReport(
      { iova: 0n, length: 4096n, pageSize: 4096n, bitmapPtr: 0x9000n },
      "kernel",
    );
    assert.equal(
      errnoOf(await portal.deviceFeature(REPORT, far, { dialect: "kernel", userMemory: mem })),
      Errno.EFAULT,
    );
  });

  it("REPORT validation: page size, zero length, overflow, not started, bitmap size", async () => {
    const { portal } = setup(SC);
    const bm = new Uint8Array(64);
    assert.deepEqual(
      await portal.dmaLoggingReport(0n, 4096n, 4096n, bm),
      { ok: false, errno: Errno.EINVAL },
      "not started",
    );
    await portal.dmaLoggingStart([range(0n, 1n << 20n)], 4096n);
    for (const ps of [0n, 2048n, 12288n, 4095n]) {
      assert.deepEqual(
        await portal.dmaLoggingReport(0n, 4096n, ps, bm),
        { ok: false, errno: Errno.EINVAL },
        `${ps}`,
      );
    }
    assert.deepEqual(await portal.dmaLoggingReport(0n, 0n, 4096n, bm), { ok: false, errno: Errno.EINVAL });
    assert.deepEqual(await portal.dmaLoggingReport((1n << 64n) - 4096n, 8192n, 4096n, bm), {
      ok: false,
      errno: Errno.EOVERFLOW,
    });
    assert.deepEqual(
      await portal.dmaLoggingReport(0n, 65n * 4096n, 4096n, new Uint8Array(8)),
      { ok: false, errno: Errno.EINVAL },
      "65 pages need two u64 words",
    );
    assert.deepEqual(await portal.dmaLoggingReport(0n, 1n << 62n, 4096n, bm), {
      ok: false,
      errno: Errno.ENOMEM,
    });
    // vfio-user: argsz must leave room for the bitmap
    const rep = encodeDmaLoggingReport(
      { iova: 0n, length: 65n * 4096n, pageSize: 4096n, bitmapPtr: 0n },
      "vfio-user",
    );
    assert.equal(errnoOf(await portal.deviceFeature(REPORT, rep, { argsz: 8 + 24 + 8 })), Errno.EINVAL);
    const ok = await portal.deviceFeature(REPORT, rep, { argsz: 8 + 24 + 16 });
    assert.ok(ok.ok);
    assert.equal(ok.reply.length, 24 + 16);
    assert.equal(hex(ok.reply.subarray(0, 24)), hex(rep));
  });

  it("REPORT is OR-only, clear-on-read, bit n of u64 word n/64, at any page size ≥ 4096", async () => {
    const { portal, logging } = setup(SC);
    await portal.dmaLoggingStart([range(0n, 1n << 24n)], 4096n);
    logging.logWrite(0, 1); // page 0
    logging.logWrite(63 * 4096, 4097); // pages 63, 64
    logging.logWrite(130 * 4096 + 4095, 2); // pages 130, 131
    const bm = new Uint8Array(24);
    bm[23] = 0x40; // caller's own bit
    assert.deepEqual(await portal.dmaLoggingReport(0n, 192n * 4096n, 4096n, bm), { ok: true });
    const words = [0, 1, 2].map((w) => decodeU64(bm, w * 8));
    assert.deepEqual(words, [(1n << 0n) | (1n << 63n), 1n << 0n, (1n << 2n) | (1n << 3n) | (0x40n << 56n)]);
    const again = new Uint8Array(24);
    assert.deepEqual(await portal.dmaLoggingReport(0n, 192n * 4096n, 4096n, again), { ok: true });
    assert.ok(
      again.every((b) => b === 0),
      "cleared on read",
    );
    // merged into 64 KiB report pages (16 logged pages each); iova offset by one logged page
    logging.logWrite(16 * 4096, 1);
    logging.logWrite(40 * 4096, 1);
    const merged = new Uint8Array(8);
    assert.ok((await portal.dmaLoggingReport(4096n, 64n * 4096n, 65536n, merged)).ok);
    // page 16 → (16·4096 − 4096)/65536 = bit 0; page 40 → bit 2
    assert.equal(decodeU64(merged), 0b101n);
  });

  it("logging is independent of the migration state and survives reset", async () => {
    const { portal, logging } = setup(SC);
    await portal.dmaLoggingStart([range(0n, 1n << 20n)], 4096n);
    await to(portal, STOP_COPY);
    await portal.reset();
    assert.equal(portal.dmaLoggingPageSize, 4096n);
    logging.logWrite(4096, 1);
    const bm = new Uint8Array(8);
    assert.ok((await portal.dmaLoggingReport(0n, 8192n, 4096n, bm)).ok);
    assert.equal(bm[0], 0b10);
  });
});

describe("reset (§1.12)", () => {
  it("from every state of every flag set → RUNNING, sessions dead, backend told", async () => {
    for (const flags of FLAG_SETS) {
      for (const s of supportedStates(flags)) {
        const { portal, backend } = setup(flags, { precopyBytes: seq(4), stopCopyBytes: seq(4) });
        await to(portal, s);
        const live = portal.session;
        await portal.reset();
        assert.equal(portal.getState(), RUNNING, `from ${s} flags ${flags}`);
        assert.equal(backend.resets, 1);
        assert.equal(portal.session, undefined);
        if (live !== undefined) {
          assert.equal(live.alive, false);
          const r = live.kind === "saving" ? await live.read(4) : await live.write(seq(1));
          assert.deepEqual(r, { ok: false, errno: Errno.ENODEV });
          assert.ok(backend.saving.every((x) => x.closed) && backend.resuming.every((x) => x.closed));
        }
        assert.ok((await portal.setState(s)).ok, "usable again");
      }
    }
  });

  it("from ERROR → RUNNING", async () => {
    const { portal, backend } = setup(SC);
    backend.failNext.push({ errno: Errno.EIO, deviceError: true });
    await portal.setState(STOP);
    assert.equal(portal.getState(), ERROR);
    await portal.reset();
    assert.equal(portal.getState(), RUNNING);
  });

  it("a reset during a SET is applied at the end of the arc in flight; the SET fails with EINTR", async () => {
    const { portal, backend } = setup(ALL);
    const waiting = backend.hold();
    const set = portal.setState(STOP_COPY); // RUNNING → RUNNING_P2P → STOP → STOP_COPY
    await waiting; // first arc in flight
    let resetDone = false;
    const reset = portal.reset().then(() => {
      resetDone = true;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(resetDone, false, "deferred while the arc runs");
    assert.equal(portal.getState(), RUNNING);
    backend.release();
    assert.deepEqual(await set, { ok: false, errno: Errno.EINTR, reachedState: RUNNING });
    await reset;
    assert.deepEqual(backend.calls, ["arc RUNNING>RUNNING_P2P", "reset"], "no arc after the reset");
    assert.equal(portal.getState(), RUNNING);
  });

  it("a reset during a read kills the session right after that read", async () => {
    const { portal, backend } = setup(SC | PRE, { precopyBytes: seq(8) });
    const s = await to(portal, PRE_COPY);
    assert.ok(s);
    const waiting = backend.hold();
    const read = s.read(4);
    await waiting; // the driver is producing the bytes
    const reset = portal.reset();
    const next = s.read(4);
    backend.release();
    assert.deepEqual(await read, { ok: true, bytes: seq(4) }, "the read in flight completes");
    await reset;
    assert.deepEqual(await next, { ok: false, errno: Errno.ENODEV });
    assert.equal(backend.saving[0]!.closed, true);
  });

  it("resets requested together are coalesced into one", async () => {
    const { portal, backend } = setup(SC);
    await to(portal, STOP);
    await Promise.all([portal.reset(), portal.reset(), portal.reset()]);
    assert.equal(backend.resets, 1);
    assert.equal(portal.getState(), RUNNING);
  });
});
