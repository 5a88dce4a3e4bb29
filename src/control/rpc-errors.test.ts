/**
 * Errors through REAL gRPC (UNIX socket): every ControlError code a backend throws arrives at the
 * client as the same code (unary and streaming), malformed requests are refused by the transport
 * before the backend is called, and deadlines / cancellation surface as their codes.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { credentials, type ServiceError } from "@grpc/grpc-js";
import * as pb from "../gen/nvmig/v1/migration.ts";
import { allowAll } from "./authz.ts";
import type { SuspendType } from "./backend.ts";
import { type ControlClient, connectControl } from "./client.ts";
import { ControlError, type ControlErrorCode, fromGrpcError, grpcStatusOfCode } from "./errors.ts";
import { FakeControlBackend } from "./fake-backend.ts";
import { type ControlServer, createControlServer } from "./server.ts";
import { type ControllerStateChunk, chunkControllerState } from "./state-chunks.ts";
import { collect, recordingLogger, rejectsWith, tempDir, until } from "./test-support.ts";

describe("errors over gRPC", () => {
  const dir = tempDir("rpc-errors");
  const backend = new FakeControlBackend();
  const logger = recordingLogger();
  let server: ControlServer;
  let client: ControlClient;

  before(async () => {
    server = await createControlServer({
      backend,
      authz: allowAll("host-a", ["local"]),
      logger,
      maxControllerStateBytes: 1 << 20,
      listen: { unix: { path: `${dir.path}/c.sock` } },
    });
    client = connectControl({ target: `unix:${server.unixPath}` });
  });

  after(async () => {
    client.close();
    await server.close();
    dir.cleanup();
  });

  /** Runs `call` and returns how many backend calls it made. */
  async function backendCallsDuring(call: () => Promise<unknown>): Promise<number> {
    const before = backend.calls.length;
    await call();
    return backend.calls.length - before;
  }

  it("every ControlError code thrown by the backend reaches the client with its gRPC status", async () => {
    for (const code of Object.keys(grpcStatusOfCode) as ControlErrorCode[]) {
      backend.failNext = new ControlError(code, `backend says ${code}`);
      const e = await rejectsWith(client.describeFunction(1), code, new RegExp(`backend says ${code}`));
      assert.equal(e.grpcStatus, grpcStatusOfCode[code]);
    }
  });

  it("a backend error in a server stream and in a client stream arrives with its code", async () => {
    backend.failNext = new ControlError("failed-precondition", "not suspended");
    await rejectsWith(
      collect(client.getControllerState({ cntlid: 1 })),
      "failed-precondition",
      /not suspended/,
    );
    backend.failNext = new ControlError("not-found", "no namespace");
    await rejectsWith(
      client.writeNamespaceData({ cntlid: 1, nsid: 1 }, [{ slba: 0n, data: new Uint8Array(512) }]),
      "not-found",
      /no namespace/,
    );
  });

  it("a non-ControlError from the backend is INTERNAL with a generic message, and logged", async () => {
    backend.failNext = new TypeError("undefined is not a function (server internals)");
    await rejectsWith(client.describeFunction(1), "internal", /^internal error$/);
    assert.ok(logger.events().includes("control.internal-error"));
  });

  it("requests the transport can judge are refused as INVALID_ARGUMENT without calling the backend", async () => {
    const cases: Array<[string, () => Promise<unknown>, RegExp]> = [
      ["cntlid out of range", () => client.describeFunction(0xfff0), /cntlid/],
      [
        "unknown suspend type",
        () => client.suspend({ cntlid: 1, suspendType: "bogus" as SuspendType }),
        /suspend_type/,
      ],
      ["csvi > 255", () => collect(client.getControllerState({ cntlid: 1, csvi: 256 })), /csvi/],
      [
        "chunk > 1 MiB",
        () => collect(client.getControllerState({ cntlid: 1, maxChunkBytes: (1 << 20) + 1 })),
        /max_chunk/,
      ],
      [
        "page size not a power of two",
        () =>
          client.startDirtyTracking({
            cntlid: 1,
            ranges: [{ iova: 0n, lengthBytes: 12288n }],
            pageSizeBytes: 12288n,
          }),
        /page_size_bytes/,
      ],
      [
        "overlapping ranges",
        () =>
          client.startDirtyTracking({
            cntlid: 1,
            ranges: [
              { iova: 0n, lengthBytes: 8192n },
              { iova: 4096n, lengthBytes: 4096n },
            ],
            pageSizeBytes: 4096n,
          }),
        /overlap/,
      ],
      [
        "dirty report larger than 8 Mi pages",
        () =>
          client.reportDirtyPages({
            cntlid: 1,
            iova: 0n,
            lengthBytes: 4096n * (8n << 20n) + 4096n,
            pageSizeBytes: 4096n,
          }),
        /split the report/,
      ],
      [
        "nsid 0",
        () => collect(client.readNamespaceData({ cntlid: 1, nsid: 0, ranges: [{ slba: 0n, nlb: 0 }] })),
        /nsid/,
      ],
      ["no ranges", () => collect(client.readNamespaceData({ cntlid: 1, nsid: 1, ranges: [] })), /ranges/],
      [
        "empty write chunk",
        () => client.writeNamespaceData({ cntlid: 1, nsid: 1 }, [{ slba: 0n, data: new Uint8Array(0) }]),
        /data of 0 bytes/,
      ],
      [
        "long description",
        () => client.acquireLease({ cntlid: 1, description: "x".repeat(257) }),
        /description/,
      ],
    ];
    for (const [name, call, message] of cases) {
      const made = await backendCallsDuring(async () => {
        await rejectsWith(call(), "invalid-argument", message);
      });
      assert.equal(made, name === "empty write chunk" ? 1 : 0, `${name}: backend calls`);
    }
    // The empty write chunk is found while the backend consumes the stream: it started, wrote nothing.
    assert.equal(backend.calls.at(-1)?.method, "writeNamespaceData");
  });

  it("a malformed SetControllerState stream changes nothing and never reaches the backend", async () => {
    backend.states.delete(2);
    const state = new Uint8Array(3000).fill(5);
    const good = [...chunkControllerState(state, 1000)];
    const [c0, c1, c2] = good as [(typeof good)[0], (typeof good)[0], (typeof good)[0]];
    const cases: Array<[string, typeof good, RegExp]> = [
      ["bad CRC", [c0, c1, { ...c2, crc32c: (c2.crc32c + 1) >>> 0 }], /CRC-32C mismatch/],
      ["gap", [c0, c2], /expected 1000/],
      ["no last chunk", [c0, c1], /without a last chunk/],
      ["no message at all", [], /no message/],
      ["over the server limit", [{ ...c0, totalBytes: 2n << 20n }], /exceeds the limit/],
    ];
    for (const [name, chunks, message] of cases) {
      const made = await backendCallsDuring(async () => {
        await rejectsWith(client.setControllerState({ cntlid: 2 }, chunks), "invalid-argument", message);
      });
      assert.equal(made, 0, name);
    }
    assert.equal(backend.states.has(2), false);
  });

  it("a header field that changes within a SetControllerState stream is refused (raw stub)", async () => {
    const raw = new pb.MigrationServiceClient(`unix:${server.unixPath}`, credentials.createInsecure());
    const [c0, c1] = [...chunkControllerState(new Uint8Array(20), 10)] as [
      ControllerStateChunk,
      ControllerStateChunk,
    ];
    const message = (cntlid: number, c: ControllerStateChunk): pb.SetControllerStateRequest => ({
      cntlid,
      csvi: 0,
      csuuidi: 0,
      leaseId: "",
      ...c,
    });
    const made = await backendCallsDuring(async () => {
      const status = await new Promise<ServiceError | null>((resolve) => {
        const call = raw.setControllerState((error) => resolve(error));
        call.write(message(2, c0));
        call.write(message(3, c1));
        call.end();
      });
      assert.equal(fromGrpcError(status).code, "invalid-argument");
      assert.match(fromGrpcError(status).message, /cntlid changed within the stream \(2 → 3\)/);
    });
    assert.equal(made, 0);
    raw.close();
  });

  it("a client deadline ends a stream with deadline-exceeded; an abort signal with cancelled", async () => {
    await rejectsWith(collect(client.watchEvents({}, { deadlineMs: 200 })), "deadline-exceeded");
    await until(() => backend.watcherCount === 0);
    const controller = new AbortController();
    const events = collect(client.watchEvents({}, { signal: controller.signal }));
    await until(() => backend.watcherCount === 1);
    controller.abort();
    await rejectsWith(events, "cancelled");
    await until(() => backend.watcherCount === 0);
    await rejectsWith(client.listFunctions({ signal: controller.signal }), "cancelled");
  });

  it("a producer that throws cancels a client stream, and the backend applies nothing", async () => {
    const failing = (async function* () {
      yield* chunkControllerState(new Uint8Array(10).fill(1), 4);
      throw new ControlError("aborted", "source went away");
    })();
    // The three chunks already form a complete state; the producer fails before the stream closes.
    const calls = await backendCallsDuring(async () => {
      await rejectsWith(client.setControllerState({ cntlid: 3 }, failing), "aborted", /source went away/);
    });
    assert.equal(calls, 0);
  });
});
