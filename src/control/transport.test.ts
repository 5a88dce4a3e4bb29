/**
 * Every RPC round trip through REAL gRPC — over TCP with mutual TLS on 127.0.0.1 and over a UNIX
 * socket — against the in-memory FakeControlBackend (these tests are about the transport). Bulk
 * streams carry more than 4 MiB in chunks of at most 1 MiB, both directions.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { allowAll } from "./authz.ts";
import type { ChangedLbaRange } from "./backend.ts";
import { type ControlClient, connectControl } from "./client.ts";
import { crc32c } from "./crc32c.ts";
import { FAKE_LBA_BYTES, FakeControlBackend } from "./fake-backend.ts";
import { MAX_CHUNK_BYTES } from "./limits.ts";
import { type ControlServer, createControlServer } from "./server.ts";
import { collect, makeTestPki, recordingLogger, tempDir, until } from "./test-support.ts";

const MiB = 1 << 20;

/** Byte equality without deepStrictEqual's prototype check (decoded bytes are Buffers) or huge diffs. */
function assertSameBytes(actual: Uint8Array | undefined, expected: Uint8Array, what: string): void {
  assert.ok(actual !== undefined, `${what}: missing`);
  assert.equal(actual.length, expected.length, `${what}: length`);
  assert.ok(
    Buffer.from(actual.buffer, actual.byteOffset, actual.length).equals(expected),
    `${what}: bytes differ`,
  );
}

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

for (const transport of ["tls", "unix"] as const) {
  describe(`every RPC over ${transport === "tls" ? "TCP + mutual TLS" : "a UNIX socket"}`, () => {
    const dir = tempDir(`transport-${transport}`);
    const backend = new FakeControlBackend();
    const identity = transport === "tls" ? "orch" : "local";
    let server: ControlServer;
    let client: ControlClient;

    before(async () => {
      const pki = makeTestPki(dir.path, ["orch"]);
      server = await createControlServer({
        backend,
        authz: allowAll("host-a", [identity]),
        logger: recordingLogger(),
        listen:
          transport === "tls"
            ? { tcp: { host: "127.0.0.1", port: 0, tls: pki.server } }
            : { unix: { path: `${dir.path}/control.sock` } },
      });
      client =
        transport === "tls"
          ? connectControl({ target: `127.0.0.1:${server.tcp?.port}`, tls: pki.client("orch") })
          : connectControl({ target: `unix:${server.unixPath}` });
    });

    after(async () => {
      client.close();
      await server.close();
      dir.cleanup();
    });

    it("ListFunctions and DescribeFunction return the backend's view, sorted by cntlid", async () => {
      const functions = await client.listFunctions();
      assert.deepEqual(
        functions.map((f) => [f.cntlid, f.vfNumber, f.pciName, f.state, f.ioQueuePairs]),
        [
          [1, 0, "0000:01:00.0", "running", 4],
          [2, 1, "0000:01:00.1", "running", 4],
          [3, 2, "0000:01:00.2", "running", 4],
        ],
      );
      assert.deepEqual(functions[0]?.namespaces, [{ nsid: 1, sizeBlocks: 1n << 20n, lbaBytes: 512 }]);
      const d = await client.describeFunction(2);
      assert.equal(d.function.pciName, "0000:01:00.1");
      assert.equal(d.lease, undefined);
      assert.equal(backend.calls.at(-1)?.identity, identity);
    });

    it("leases: acquire, describe shows it, renew, release", async () => {
      const lease = await client.acquireLease({ cntlid: 2, leaseMs: 5000, description: "mig-1" });
      assert.equal(lease.holder, identity);
      assert.equal(lease.leaseMs, 5000);
      assert.equal((await client.describeFunction(2)).lease?.leaseId, lease.leaseId);
      const renewed = await client.renewLease({ cntlid: 2, leaseId: lease.leaseId, leaseMs: 8000 });
      assert.equal(renewed.leaseMs, 8000);
      await client.releaseLease({ cntlid: 2, leaseId: lease.leaseId });
      assert.equal((await client.describeFunction(2)).lease, undefined);
    });

    it("Suspend (notification, then suspend), Resume and ResetFunction pass their fields through", async () => {
      assert.deepEqual(await client.suspend({ cntlid: 3, suspendType: "notification" }), {
        state: "running",
      });
      assert.deepEqual(
        await client.suspend({ cntlid: 3, suspendType: "suspend", deleteUdmq: true, leaseId: "L" }),
        { state: "suspended" },
      );
      assert.deepEqual(backend.calls.at(-1)?.params, {
        cntlid: 3,
        suspendType: "suspend",
        deleteUdmq: true,
        leaseId: "L",
      });
      assert.deepEqual(await client.resume({ cntlid: 3 }), { state: "running" });
      assert.deepEqual(await client.resetFunction({ cntlid: 3, leaseId: "L" }), { state: "running" });
      assert.deepEqual(backend.calls.at(-1)?.params, { cntlid: 3, leaseId: "L" });
    });

    it("GetControllerState streams > 4 MiB in <= 1 MiB chunks with total size and CRC-32C", async () => {
      const state = pattern(5 * MiB + 123, 7);
      backend.states.set(1, state);
      const chunks = await collect(client.getControllerState({ cntlid: 1, csvi: 1, csuuidi: 2 }));
      assert.equal(chunks.length, 6);
      assert.ok(
        chunks.every((c) => c.data.length <= MAX_CHUNK_BYTES && c.totalBytes === BigInt(state.length)),
      );
      assert.deepEqual(
        chunks.map((c) => c.offsetBytes),
        [0n, 1n, 2n, 3n, 4n, 5n].map((i) => i * BigInt(MiB)),
      );
      assert.equal(chunks.at(-1)?.last, true);
      assert.equal(chunks.at(-1)?.crc32c, crc32c(state));
      assert.deepEqual(backend.calls.at(-1)?.params, { cntlid: 1, csvi: 1, csuuidi: 2 });
      assertSameBytes(
        await client.readControllerState({ cntlid: 1, maxChunkBytes: 300_000 }),
        state,
        "state",
      );
    });

    it("SetControllerState streams > 4 MiB in and the backend gets it once, whole", async () => {
      const state = pattern(4 * MiB + 777, 9);
      const before = backend.calls.filter((c) => c.method === "setControllerState").length;
      const r = await client.writeControllerState({
        cntlid: 2,
        csvi: 1,
        leaseId: "L2",
        state,
        chunkBytes: MiB,
      });
      assert.deepEqual(r, { appliedBytes: BigInt(state.length), state: "running" });
      assertSameBytes(backend.states.get(2), state, "stored state");
      const sets = backend.calls.filter((c) => c.method === "setControllerState");
      assert.equal(sets.length, before + 1);
      assert.deepEqual(sets.at(-1)?.params, {
        cntlid: 2,
        csvi: 1,
        csuuidi: 0,
        leaseId: "L2",
        state: state.length,
      });
      // An empty state is a valid single-chunk stream.
      await client.writeControllerState({ cntlid: 3, state: new Uint8Array(0) });
      assert.equal(backend.states.get(3)?.length, 0);
    });

    it("user data logging and StreamChangedLbaRanges carry every ESA / LBACIR value", async () => {
      await client.startUserDataLogging(1);
      const entry = (i: number): ChangedLbaRange => ({
        nsid: 1,
        slba: BigInt(i) * 8n + (1n << 40n),
        nlb: 7,
        entrySequence: "none",
        changeInfo: "range-valid",
        deallocated: i % 2 === 0,
      });
      const big = Array.from({ length: 20_000 }, (_, i) => entry(i));
      const tail: ChangedLbaRange[] = [
        { ...entry(1), entrySequence: "first", changeInfo: "all-changed" },
        { ...entry(2), entrySequence: "last-logging-stopped", changeInfo: "no-range" },
        { ...entry(3), entrySequence: "last-queue-full" },
        { ...entry(4), entrySequence: "last-suspended" },
      ];
      backend.changedRanges.set(1, [big, tail]);
      const batches = await collect(client.streamChangedLbaRanges(1));
      assert.deepEqual(batches.flat(), [...big, ...tail]);
      assert.ok(batches.length >= 3, "a 20 000-entry batch is split into several messages");
      await client.stopUserDataLogging(1);
      assert.deepEqual(
        backend.calls.filter((c) => c.method.endsWith("UserDataLogging")).map((c) => c.method),
        ["startUserDataLogging", "stopUserDataLogging"],
      );
    });

    it("dirty tracking: start, read-and-clear reports, stop", async () => {
      const start = await client.startDirtyTracking({
        cntlid: 2,
        ranges: [
          { iova: 0x1_0000_0000n, lengthBytes: 1n << 30n },
          { iova: 0n, lengthBytes: 1n << 20n },
        ],
        pageSizeBytes: 4096n,
      });
      assert.equal(start.pageSizeBytes, 4096n);
      const report = { cntlid: 2, iova: 0x1_0000_0000n, lengthBytes: (1n << 30n) + 0n, pageSizeBytes: 4096n };
      const a = await client.reportDirtyPages(report);
      const b = await client.reportDirtyPages(report);
      assert.equal(a.length, (1 << 30) / 4096 / 8);
      assert.notDeepEqual(a, b);
      await client.stopDirtyTracking(2);
      assert.equal(backend.calls.at(-1)?.method, "stopDirtyTracking");
    });

    it("ReadNamespaceData streams > 4 MiB of blocks in <= 1 MiB chunks, in range order", async () => {
      const data = pattern(16 * MiB, 3);
      backend.namespaces.set("1/1", data);
      const ranges = [
        { slba: 2048n, nlb: (3 * MiB) / FAKE_LBA_BYTES - 1 },
        { slba: 0n, nlb: (2 * MiB + 4096) / FAKE_LBA_BYTES - 1 },
      ];
      const chunks = await collect(client.readNamespaceData({ cntlid: 1, nsid: 1, ranges }));
      assert.ok(chunks.every((c) => c.data.length <= MAX_CHUNK_BYTES && c.lbaBytes === FAKE_LBA_BYTES));
      for (const c of chunks) {
        const at = Number(c.slba) * FAKE_LBA_BYTES;
        assertSameBytes(c.data, data.subarray(at, at + c.data.length), `chunk at slba ${c.slba}`);
      }
      const total = chunks.reduce((n, c) => n + c.data.length, 0);
      assert.equal(total, 5 * MiB + 4096);
      assert.equal(chunks[0]?.slba, 2048n);
      // A smaller chunk size is honoured and rounded down to whole blocks.
      const small = await collect(
        client.readNamespaceData({ cntlid: 1, nsid: 1, ranges: [{ slba: 0n, nlb: 9 }], maxChunkBytes: 1500 }),
      );
      assert.deepEqual(
        small.map((c) => c.data.length),
        [1024, 1024, 1024, 1024, 1024],
      );
    });

    it("WriteNamespaceData streams > 4 MiB in <= 1 MiB chunks into the backend", async () => {
      const data = pattern(5 * MiB, 11);
      const chunks = Array.from({ length: 5 }, (_, i) => ({
        slba: BigInt((8 * MiB + i * MiB) / FAKE_LBA_BYTES),
        data: data.subarray(i * MiB, (i + 1) * MiB),
      }));
      const r = await client.writeNamespaceData({ cntlid: 2, nsid: 1 }, chunks);
      assert.equal(r.blocksWritten, BigInt((5 * MiB) / FAKE_LBA_BYTES));
      assertSameBytes(backend.namespaces.get("2/1")?.subarray(8 * MiB, 13 * MiB), data, "namespace");
    });

    it("WatchEvents delivers state changes, AERs and lease expiry; breaking out cancels the stream", async () => {
      const events = client.watchEvents({ cntlids: [1, 2] })[Symbol.asyncIterator]();
      const first = events.next();
      await until(() => backend.watcherCount === 1);
      backend.emit({ kind: "async-event", cntlid: 3, timeUnixMs: 1, aet: 2, aei: 0, lid: 4 });
      backend.emit({
        kind: "state-changed",
        cntlid: 1,
        timeUnixMs: 1000,
        fromState: "running",
        toState: "suspended",
      });
      backend.emit({ kind: "async-event", cntlid: 2, timeUnixMs: 1001, aet: 2, aei: 3, lid: 4 });
      backend.emit({ kind: "lease-expired", cntlid: 1, timeUnixMs: 1002, leaseId: "L9", holder: "orch" });
      const got = [(await first).value, (await events.next()).value, (await events.next()).value];
      assert.deepEqual(got, [
        {
          sequence: 1n,
          cntlid: 1,
          timeUnixMs: 1000,
          kind: "state-changed",
          fromState: "running",
          toState: "suspended",
        },
        { sequence: 2n, cntlid: 2, timeUnixMs: 1001, kind: "async-event", aet: 2, aei: 3, lid: 4 },
        { sequence: 3n, cntlid: 1, timeUnixMs: 1002, kind: "lease-expired", leaseId: "L9", holder: "orch" },
      ]);
      await events.return?.();
      await until(() => backend.watcherCount === 0);
    });

    it("Health reports SERVING for the server and the migration service", async () => {
      assert.equal(await client.checkHealth(), "serving");
      assert.equal(await client.checkHealth("nvmig.v1.MigrationService"), "serving");
      server.health.set("nvmig.v1.MigrationService", "not-serving");
      assert.equal(await client.checkHealth("nvmig.v1.MigrationService"), "not-serving");
      server.health.set("nvmig.v1.MigrationService", "serving");
    });
  });
}
