import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { MigState } from "../../vfio/states.ts";
import type { DeviceEndpoint } from "../endpoints.ts";
import {
  DeviceRelayError,
  MAX_RELAY_DATA_BYTES,
  remoteDeviceEndpoint,
  serveDeviceRequest,
} from "./device-relay.ts";

type Call = [string, ...unknown[]];

/** A scripted endpoint: records every call (bytes copied) and answers from `answers` (or a default). */
function fakeEndpoint(answers: Partial<Record<keyof DeviceEndpoint, unknown>> = {}) {
  const calls: Call[] = [];
  const answer = (name: keyof DeviceEndpoint, fallback: unknown) => {
    const a = name in answers ? answers[name] : fallback;
    if (a instanceof Error) throw a;
    return a;
  };
  const endpoint: DeviceEndpoint = {
    async migrationFlags() {
      calls.push(["migrationFlags"]);
      return answer("migrationFlags", 5) as number;
    },
    async setState(t) {
      calls.push(["setState", t]);
      return answer("setState", { ok: true }) as { ok: true };
    },
    async readData(n) {
      calls.push(["readData", n]);
      return answer("readData", { ok: true, bytes: new Uint8Array([1, 2, 3]) }) as {
        ok: true;
        bytes: Uint8Array;
      };
    },
    async writeData(b) {
      calls.push(["writeData", b.slice()]);
      return answer("writeData", { ok: true }) as { ok: true };
    },
    async precopyInfo() {
      calls.push(["precopyInfo"]);
      return answer("precopyInfo", { ok: true, initialBytes: 7n, dirtyBytes: (1n << 64n) - 1n }) as {
        ok: true;
        initialBytes: bigint;
        dirtyBytes: bigint;
      };
    },
    async dataSize() {
      calls.push(["dataSize"]);
      return answer("dataSize", { ok: true, stopCopyLength: 123456789012345678n }) as {
        ok: true;
        stopCopyLength: bigint;
      };
    },
    async dmaLoggingStart(ranges, pageSize) {
      calls.push(["dmaLoggingStart", ranges.map((r) => ({ ...r })), pageSize]);
      return answer("dmaLoggingStart", { ok: true }) as { ok: true };
    },
    async dmaLoggingReport(iova, length, pageSize, bitmap) {
      calls.push(["dmaLoggingReport", iova, length, pageSize, bitmap.byteLength]);
      const a = answer("dmaLoggingReport", { ok: true }) as { ok: boolean; errno?: number };
      if (a.ok) {
        bitmap[0]! |= 0b1000_0001;
        bitmap[bitmap.byteLength - 1]! |= 0x40;
      }
      return a as { ok: true };
    },
    async dmaLoggingStop() {
      calls.push(["dmaLoggingStop"]);
      return answer("dmaLoggingStop", { ok: true }) as { ok: true };
    },
    async reset() {
      calls.push(["reset"]);
      answer("reset", undefined);
    },
  };
  return { endpoint, calls };
}

/** A channel that really serialises (bigints would not survive JSON; bytes must be base64). */
function jsonChannel(inner: DeviceEndpoint, seen: Record<string, unknown>[] = []) {
  return async (cmd: string, args: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const wire = JSON.parse(JSON.stringify({ id: 9, cmd, ...args })) as Record<string, unknown>;
    seen.push(wire);
    const reply = await serveDeviceRequest(inner, wire);
    return JSON.parse(JSON.stringify(reply)) as Record<string, unknown>;
  };
}

describe("device relay: a DeviceEndpoint over a JSON request/reply channel", () => {
  it("round-trips every op with exact arguments and results", async () => {
    const { endpoint, calls } = fakeEndpoint();
    const seen: Record<string, unknown>[] = [];
    const remote = remoteDeviceEndpoint(jsonChannel(endpoint, seen));

    assert.equal(await remote.migrationFlags(), 5);
    assert.deepEqual(await remote.setState(MigState.STOP_COPY), { ok: true });
    const read = await remote.readData(4096);
    assert.deepEqual(read, { ok: true, bytes: new Uint8Array([1, 2, 3]) });
    const payload = new Uint8Array(1000).map((_, i) => (i * 31) & 0xff);
    assert.deepEqual(await remote.writeData(payload), { ok: true });
    assert.deepEqual(await remote.precopyInfo(), {
      ok: true,
      initialBytes: 7n,
      dirtyBytes: (1n << 64n) - 1n,
    });
    assert.deepEqual(await remote.dataSize(), { ok: true, stopCopyLength: 123456789012345678n });
    const ranges = [
      { iova: 0n, length: 1n << 20n },
      { iova: 0xffff_ffff_0000_0000n, length: 4096n },
    ];
    assert.deepEqual(await remote.dmaLoggingStart(ranges, 4096n), { ok: true });
    const bitmap = new Uint8Array(16);
    bitmap[1] = 0x22; // bits already set by the caller stay set (OR, never assignment)
    assert.deepEqual(await remote.dmaLoggingReport(1n << 32n, 128n * 4096n, 4096n, bitmap), { ok: true });
    assert.deepEqual([...bitmap], [0x81, 0x22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40]);
    assert.deepEqual(await remote.dmaLoggingStop(), { ok: true });
    await remote.reset();

    assert.deepEqual(calls, [
      ["migrationFlags"],
      ["setState", MigState.STOP_COPY],
      ["readData", 4096],
      ["writeData", payload],
      ["precopyInfo"],
      ["dataSize"],
      ["dmaLoggingStart", ranges, 4096n],
      ["dmaLoggingReport", 1n << 32n, 128n * 4096n, 4096n, 16],
      ["dmaLoggingStop"],
      ["reset"],
    ]);
    // One command name; bigints as decimal strings, bytes as base64 on the wire.
    assert.ok(seen.every((r) => r.cmd === "device"));
    assert.deepEqual(
      seen.map((r) => r.op),
      calls.map((c) => c[0]),
    );
    assert.deepEqual(seen[6], {
      id: 9,
      cmd: "device",
      op: "dmaLoggingStart",
      ranges: [
        { iova: "0", length: "1048576" },
        { iova: "18446744069414584320", length: "4096" },
      ],
      pageSize: "4096",
    });
    assert.equal(seen[3]!.data, Buffer.from(payload).toString("base64"));
  });

  it("passes device statuses through: errno, reachedState, ENOMSG", async () => {
    const { endpoint } = fakeEndpoint({
      setState: { ok: false, errno: 22, reachedState: MigState.RUNNING },
      readData: { ok: false, errno: 42 },
      writeData: { ok: false, errno: 22 },
      precopyInfo: { ok: false, errno: 25 },
      dataSize: { ok: false, errno: 25 },
      dmaLoggingStart: { ok: false, errno: 16 },
      dmaLoggingReport: { ok: false, errno: 12 },
      dmaLoggingStop: { ok: false, errno: 25 },
    });
    const remote = remoteDeviceEndpoint(jsonChannel(endpoint));
    assert.deepEqual(await remote.setState(MigState.ERROR), {
      ok: false,
      errno: 22,
      reachedState: MigState.RUNNING,
    });
    assert.deepEqual(await remote.readData(10), { ok: false, errno: 42 });
    assert.deepEqual(await remote.writeData(new Uint8Array(1)), { ok: false, errno: 22 });
    assert.deepEqual(await remote.precopyInfo(), { ok: false, errno: 25 });
    assert.deepEqual(await remote.dataSize(), { ok: false, errno: 25 });
    assert.deepEqual(await remote.dmaLoggingStart([], 4096n), { ok: false, errno: 16 });
    const bitmap = new Uint8Array(8).fill(0x10);
    assert.deepEqual(await remote.dmaLoggingReport(0n, 4096n, 4096n, bitmap), { ok: false, errno: 12 });
    assert.deepEqual([...bitmap], new Array(8).fill(0x10), "a failed report leaves the bitmap alone");
    assert.deepEqual(await remote.dmaLoggingStop(), { ok: false, errno: 25 });
  });

  it("an endpoint that throws is a 'failed' reply, and the remote endpoint throws its message", async () => {
    const { endpoint } = fakeEndpoint({
      readData: new Error("connection closed (disconnected, ECONNRESET)"),
    });
    assert.deepEqual(await serveDeviceRequest(endpoint, { op: "readData", maxBytes: 1 }), {
      ok: false,
      error: "failed",
      message: "connection closed (disconnected, ECONNRESET)",
    });
    const remote = remoteDeviceEndpoint(jsonChannel(endpoint));
    await assert.rejects(remote.readData(1), (e: unknown) => {
      assert.ok(e instanceof DeviceRelayError);
      assert.equal(e.code, "failed");
      assert.match(e.message, /connection closed/);
      return true;
    });
    const resetFails = fakeEndpoint({ reset: new Error("reset refused") }).endpoint;
    await assert.rejects(remoteDeviceEndpoint(jsonChannel(resetFails)).reset(), /reset refused/);
  });

  it("answers bad-request for every malformed field, without calling the endpoint", async () => {
    const { endpoint, calls } = fakeEndpoint();
    const bad: Record<string, unknown>[] = [
      {},
      { cmd: "device" },
      { op: 3 },
      { op: "explode" },
      { op: "toString" },
      { op: "setState" },
      { op: "setState", state: 1.5 },
      { op: "setState", state: "3" },
      { op: "setState", state: -1 },
      { op: "readData", maxBytes: -1 },
      { op: "readData", maxBytes: MAX_RELAY_DATA_BYTES + 1 },
      { op: "readData", maxBytes: Number.NaN },
      { op: "writeData" },
      { op: "writeData", data: "not base64!" },
      { op: "writeData", data: "AAA" },
      { op: "writeData", data: "AB==" }, // stray bits in the padding
      { op: "writeData", data: [1, 2] },
      { op: "dmaLoggingStart", ranges: [], pageSize: 4096 },
      { op: "dmaLoggingStart", ranges: [], pageSize: "-4096" },
      { op: "dmaLoggingStart", ranges: [], pageSize: "0x1000" },
      { op: "dmaLoggingStart", ranges: [], pageSize: "04096" },
      { op: "dmaLoggingStart", ranges: [], pageSize: "18446744073709551616" },
      { op: "dmaLoggingStart", ranges: "all", pageSize: "4096" },
      { op: "dmaLoggingStart", ranges: [{ iova: "0" }], pageSize: "4096" },
      { op: "dmaLoggingStart", ranges: [null], pageSize: "4096" },
      { op: "dmaLoggingStart", ranges: [{ iova: "1e3", length: "4096" }], pageSize: "4096" },
      { op: "dmaLoggingReport", iova: "0", length: "4096", pageSize: "4096" },
      { op: "dmaLoggingReport", iova: "0", length: "4096", pageSize: "4096", bitmapBytes: 1 << 30 },
      { op: "dmaLoggingReport", iova: 0, length: "4096", pageSize: "4096", bitmapBytes: 8 },
      { op: "dmaLoggingReport", iova: "0", length: "", pageSize: "4096", bitmapBytes: 8 },
    ];
    for (const req of bad) {
      const r = await serveDeviceRequest(endpoint, req);
      assert.equal(r.ok, false, JSON.stringify(req));
      assert.equal(r.error, "bad-request", JSON.stringify(req));
      assert.equal(typeof r.message, "string");
    }
    for (const req of [null, [], "device", 7] as unknown[]) {
      const r = await serveDeviceRequest(endpoint, req as Record<string, unknown>);
      assert.equal(r.error, "bad-request");
    }
    assert.deepEqual(calls, []);
    // The field is named in the message.
    const m = await serveDeviceRequest(endpoint, {
      op: "dmaLoggingStart",
      ranges: [{ iova: "0", length: "x" }],
      pageSize: "4096",
    });
    assert.match(String(m.message), /ranges\[0\]\.length/);
    // A remote endpoint with a bad-request reply throws (a broken channel is not a device status).
    const remote = remoteDeviceEndpoint(async () => ({ ok: false, error: "bad-request", message: "op" }));
    await assert.rejects(
      remote.dataSize(),
      (e: unknown) => e instanceof DeviceRelayError && e.code === "bad-request",
    );
  });

  it("the remote endpoint refuses replies it cannot read", async () => {
    const replies: Record<string, unknown>[] = [
      { ok: true }, // readData without data
      { ok: true, data: "%%%%" },
      { ok: false }, // no errno
      { ok: false, errno: 0 },
      { errno: 5 }, // no ok
    ];
    for (const reply of replies) {
      const remote = remoteDeviceEndpoint(async () => reply);
      await assert.rejects(remote.readData(4), (e: unknown) => {
        assert.ok(e instanceof DeviceRelayError, String(e));
        assert.equal(e.code, "bad-reply");
        return true;
      });
    }
    const short = remoteDeviceEndpoint(async () => ({ ok: true, bitmap: "AAAAAA==" }));
    await assert.rejects(short.dmaLoggingReport(0n, 4096n * 64n * 2n, 4096n, new Uint8Array(16)), /bitmap/);
    const bigint = remoteDeviceEndpoint(async () => ({ ok: true, stopCopyLength: 12 }));
    await assert.rejects(bigint.dataSize(), /stopCopyLength/);
    // A channel that rejects: the rejection is the caller's.
    const down = remoteDeviceEndpoint(() => Promise.reject(new Error("socket closed")));
    await assert.rejects(down.setState(MigState.STOP), /socket closed/);
  });

  it("asks for at most MAX_RELAY_DATA_BYTES per read", async () => {
    const { endpoint, calls } = fakeEndpoint();
    const remote = remoteDeviceEndpoint(jsonChannel(endpoint));
    await remote.readData(1 << 30);
    assert.deepEqual(calls, [["readData", MAX_RELAY_DATA_BYTES]]);
  });

  it("property: any bytes and any u64 survive the channel", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 300 }),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        async (bytes, a, b) => {
          const { endpoint, calls } = fakeEndpoint({
            readData: { ok: true, bytes },
            precopyInfo: { ok: true, initialBytes: a, dirtyBytes: b },
          });
          const remote = remoteDeviceEndpoint(jsonChannel(endpoint));
          assert.deepEqual(await remote.readData(300), { ok: true, bytes });
          assert.deepEqual(await remote.precopyInfo(), { ok: true, initialBytes: a, dirtyBytes: b });
          assert.deepEqual(await remote.writeData(bytes), { ok: true });
          await remote.dmaLoggingStart([{ iova: a, length: b }], a);
          assert.deepEqual(calls[2], ["writeData", bytes]);
          assert.deepEqual(calls[3], ["dmaLoggingStart", [{ iova: a, length: b }], a]);
        },
      ),
      { numRuns: 100 },
    );
  });
});
