/**
 * The MigrationService handlers: for every RPC, in this order —
 *   1. identity of the caller (the listener's resolver; none → UNAUTHENTICATED),
 *   2. request checks the transport can make (request-checks.ts; → INVALID_ARGUMENT),
 *   3. authorization of the named function (authz.ts; → PERMISSION_DENIED),
 *   4. ONE backend call, with a CallContext whose signal follows the call's cancellation,
 *   5. result → wire, or error → status (errors.ts, the one mapping).
 * Nothing reaches the backend unless 1–3 passed. Streams honour backpressure (stream-write.ts).
 * Internal to src/control — server.ts binds it once per listener.
 */
import {
  status as GrpcStatus,
  type handleClientStreamingCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type ServerErrorResponse,
} from "@grpc/grpc-js";
import type * as pb from "../gen/nvmig/v1/migration.ts";
import { type AllowedFunctions, type AuthzPolicy, allowedFunctions, isAllowed } from "./authz.ts";
import type { CallContext, ControlBackend, NamespaceDataChunk } from "./backend.ts";
import {
  changedRangeToWire,
  detailsToWire,
  eventToWire,
  functionInfoToWire,
  functionStates,
  leaseToWire,
  suspendTypes,
} from "./convert.ts";
import { ControlError, toGrpcStatus } from "./errors.ts";
import type { AuthContext } from "./identity.ts";
import { MAX_CHUNK_BYTES, resolveChunkBytes } from "./limits.ts";
import type { ControlLogger } from "./logger.ts";
import {
  checkCntlid,
  checkDescription,
  checkDirtyReport,
  checkLbaRanges,
  checkMemoryRanges,
  checkNsid,
  checkPageSize,
  checkU8,
} from "./request-checks.ts";
import { ControllerStateAssembler, chunkControllerState } from "./state-chunks.ts";
import { writeAll } from "./stream-write.ts";

/** Identity of the caller of a call on one listener, or null (unauthenticated). */
export type IdentityResolver = (auth: AuthContext) => string | null;

export interface ServiceOptions {
  backend: ControlBackend;
  authz: AuthzPolicy;
  logger: ControlLogger;
  resolveIdentity: IdentityResolver;
  /** Largest controller state SetControllerState accepts, bytes. */
  maxControllerStateBytes: number;
  /** Fires when the server shuts down; ends every call's context. */
  serverSignal: AbortSignal;
}

/** Most ChangedLbaRange entries per StreamChangedLbaRanges message (~0.5 MiB at most). */
export const MAX_RANGES_PER_MESSAGE = 16384;

interface CallLike {
  getAuthContext(): AuthContext;
  getPeer(): string;
  on(event: "cancelled", listener: () => void): unknown;
}

interface Ctx extends CallContext {
  method: string;
  allowed: AllowedFunctions;
  dispose(): void;
}

export function createMigrationService(options: ServiceOptions): pb.MigrationServiceServer {
  const { backend, logger } = options;

  function context(call: CallLike, method: string): Ctx {
    const identity = options.resolveIdentity(call.getAuthContext());
    const peer = call.getPeer();
    if (identity === null) {
      logger.warn({ event: "control.unauthenticated", method, peer }, "call without a verified identity");
      throw new ControlError("unauthenticated", "no verified client identity");
    }
    const controller = new AbortController();
    const onServerAbort = (): void => controller.abort(options.serverSignal.reason);
    options.serverSignal.addEventListener("abort", onServerAbort, { once: true });
    if (options.serverSignal.aborted) controller.abort(options.serverSignal.reason);
    call.on("cancelled", () =>
      controller.abort(new ControlError("cancelled", "call cancelled by the client")),
    );
    return {
      identity,
      peer,
      signal: controller.signal,
      method,
      allowed: allowedFunctions(options.authz, identity),
      dispose: () => options.serverSignal.removeEventListener("abort", onServerAbort),
    };
  }

  /** Checks the CNTLID and that the caller may act on it. */
  function authorize(ctx: Ctx, cntlid: number): number {
    checkCntlid(cntlid);
    if (!isAllowed(ctx.allowed, cntlid)) {
      logger.warn(
        { event: "control.permission-denied", method: ctx.method, identity: ctx.identity, cntlid },
        "caller not authorized for function",
      );
      throw new ControlError("permission-denied", `${ctx.identity} may not act on function ${cntlid}`);
    }
    return cntlid;
  }

  function backendContext(ctx: Ctx): CallContext {
    return { identity: ctx.identity, peer: ctx.peer, signal: ctx.signal };
  }

  function failure(e: unknown, method: string): ServerErrorResponse {
    const status = toGrpcStatus(e);
    if (status.code === GrpcStatus.INTERNAL) {
      logger.error({ event: "control.internal-error", method, err: e }, "RPC failed with an internal error");
    }
    return Object.assign(new Error(status.details), status);
  }

  function unary<Req, Res>(
    method: string,
    run: (req: Req, ctx: Ctx) => Promise<Res>,
  ): handleUnaryCall<Req, Res> {
    return (call, callback) => {
      let ctx: Ctx;
      try {
        ctx = context(call, method);
      } catch (e) {
        callback(failure(e, method));
        return;
      }
      void run(call.request, ctx)
        .then(
          (res) => callback(null, res),
          (e: unknown) => callback(failure(e, method)),
        )
        .finally(ctx.dispose);
    };
  }

  function serverStream<Req, Res>(
    method: string,
    run: (req: Req, ctx: Ctx) => Promise<AsyncIterable<Res> | Iterable<Res>>,
  ): handleServerStreamingCall<Req, Res> {
    return (call) => {
      let ctx: Ctx;
      try {
        ctx = context(call, method);
      } catch (e) {
        call.emit("error", failure(e, method));
        return;
      }
      const c = ctx;
      void (async () => {
        try {
          await writeAll(call, await run(call.request, c), c.signal);
          call.end();
        } catch (e) {
          if (!call.cancelled) call.emit("error", failure(e, method));
        } finally {
          c.dispose();
        }
      })();
    };
  }

  function clientStream<Req, Res>(
    method: string,
    run: (messages: AsyncIterator<Req>, ctx: Ctx) => Promise<Res>,
  ): handleClientStreamingCall<Req, Res> {
    return (call, callback) => {
      let ctx: Ctx;
      try {
        ctx = context(call, method);
      } catch (e) {
        callback(failure(e, method));
        return;
      }
      const messages = (call as AsyncIterable<Req>)[Symbol.asyncIterator]();
      void run(messages, ctx)
        .then(
          (res) => callback(null, res),
          (e: unknown) => callback(failure(e, method)),
        )
        .finally(ctx.dispose);
    };
  }

  function notCancelled(ctx: Ctx): void {
    if (ctx.signal.aborted)
      throw new ControlError("cancelled", "call cancelled before the state was applied");
  }

  return {
    listFunctions: unary("ListFunctions", async (_req: pb.ListFunctionsRequest, ctx) => {
      if (ctx.allowed === null) {
        logger.warn(
          { event: "control.permission-denied", method: ctx.method, identity: ctx.identity },
          "no rule",
        );
        throw new ControlError(
          "permission-denied",
          `${ctx.identity} has no access to host ${options.authz.host}`,
        );
      }
      const all = await backend.listFunctions(backendContext(ctx));
      const functions = all
        .filter((f) => isAllowed(ctx.allowed, f.cntlid))
        .sort((a, b) => a.cntlid - b.cntlid)
        .map(functionInfoToWire);
      return { functions };
    }),

    describeFunction: unary("DescribeFunction", async (req: pb.DescribeFunctionRequest, ctx) => {
      const cntlid = authorize(ctx, req.cntlid);
      return detailsToWire(await backend.describeFunction(cntlid, backendContext(ctx)));
    }),

    suspend: unary("Suspend", async (req: pb.SuspendRequest, ctx) => {
      const cntlid = authorize(ctx, req.cntlid);
      const suspendType = suspendTypes.fromWire(req.suspendType);
      if (suspendType === undefined) {
        throw new ControlError("invalid-argument", "suspend_type must be NOTIFICATION or SUSPEND");
      }
      const r = await backend.suspend(
        { cntlid, suspendType, deleteUdmq: req.deleteUdmq, leaseId: req.leaseId },
        backendContext(ctx),
      );
      return { state: functionStates.toWire(r.state) };
    }),

    resume: unary("Resume", async (req: pb.ResumeRequest, ctx) => {
      const cntlid = authorize(ctx, req.cntlid);
      const r = await backend.resume({ cntlid, leaseId: req.leaseId }, backendContext(ctx));
      return { state: functionStates.toWire(r.state) };
    }),

    getControllerState: serverStream("GetControllerState", async (req: pb.GetControllerStateRequest, ctx) => {
      const chunkBytes = resolveChunkBytes(req.maxChunkBytes);
      if (chunkBytes === undefined) {
        throw new ControlError(
          "invalid-argument",
          `max_chunk_bytes ${req.maxChunkBytes} outside 0..${MAX_CHUNK_BYTES}`,
        );
      }
      const csvi = checkU8("csvi", req.csvi);
      const csuuidi = checkU8("csuuidi", req.csuuidi);
      const cntlid = authorize(ctx, req.cntlid);
      const state = await backend.getControllerState({ cntlid, csvi, csuuidi }, backendContext(ctx));
      return (function* (): Generator<pb.GetControllerStateResponse> {
        for (const c of chunkControllerState(state, chunkBytes)) yield { ...c };
      })();
    }),

    setControllerState: clientStream(
      "SetControllerState",
      async (messages: AsyncIterator<pb.SetControllerStateRequest>, ctx) => {
        const assembler = new ControllerStateAssembler({
          maxBytes: options.maxControllerStateBytes,
          errorCode: "invalid-argument",
        });
        const first = await messages.next();
        if (first.done)
          throw new ControlError("invalid-argument", "SetControllerState stream carried no message");
        const head = first.value;
        const header = {
          cntlid: authorize(ctx, head.cntlid),
          csvi: checkU8("csvi", head.csvi),
          csuuidi: checkU8("csuuidi", head.csuuidi),
          leaseId: head.leaseId,
          totalBytes: head.totalBytes,
        };
        let m: pb.SetControllerStateRequest = head;
        for (;;) {
          if (m !== head) {
            const repeated: Array<[string, unknown, unknown, boolean]> = [
              ["cntlid", m.cntlid, header.cntlid, m.cntlid === 0],
              ["csvi", m.csvi, header.csvi, m.csvi === 0],
              ["csuuidi", m.csuuidi, header.csuuidi, m.csuuidi === 0],
              ["lease_id", m.leaseId, header.leaseId, m.leaseId === ""],
              ["total_bytes", m.totalBytes, header.totalBytes, m.totalBytes === 0n],
            ];
            for (const [field, got, want, unset] of repeated) {
              if (!unset && got !== want) {
                throw new ControlError(
                  "invalid-argument",
                  `${field} changed within the stream (${want} → ${got})`,
                );
              }
            }
          }
          assembler.push({
            offsetBytes: m.offsetBytes,
            data: m.data,
            totalBytes: header.totalBytes,
            last: m.last,
            crc32c: m.crc32c,
          });
          const next = await messages.next();
          if (next.done) break;
          m = next.value;
        }
        const state = assembler.finish();
        notCancelled(ctx);
        const { cntlid, csvi, csuuidi, leaseId } = header;
        const r = await backend.setControllerState(
          { cntlid, csvi, csuuidi, leaseId, state },
          backendContext(ctx),
        );
        return { appliedBytes: BigInt(state.length), state: functionStates.toWire(r.state) };
      },
    ),

    startUserDataLogging: unary("StartUserDataLogging", async (req: pb.StartUserDataLoggingRequest, ctx) => {
      await backend.startUserDataLogging(authorize(ctx, req.cntlid), backendContext(ctx));
      return {};
    }),

    stopUserDataLogging: unary("StopUserDataLogging", async (req: pb.StopUserDataLoggingRequest, ctx) => {
      await backend.stopUserDataLogging(authorize(ctx, req.cntlid), backendContext(ctx));
      return {};
    }),

    streamChangedLbaRanges: serverStream(
      "StreamChangedLbaRanges",
      async (req: pb.StreamChangedLbaRangesRequest, ctx) => {
        const batches = backend.streamChangedLbaRanges(authorize(ctx, req.cntlid), backendContext(ctx));
        return (async function* (): AsyncGenerator<pb.StreamChangedLbaRangesResponse> {
          for await (const batch of batches) {
            for (let i = 0; i < batch.length; i += MAX_RANGES_PER_MESSAGE) {
              yield { ranges: batch.slice(i, i + MAX_RANGES_PER_MESSAGE).map(changedRangeToWire) };
            }
          }
        })();
      },
    ),

    startDirtyTracking: unary("StartDirtyTracking", async (req: pb.StartDirtyTrackingRequest, ctx) => {
      const pageSizeBytes = checkPageSize(req.pageSizeBytes);
      const ranges = checkMemoryRanges(req.ranges, pageSizeBytes);
      const cntlid = authorize(ctx, req.cntlid);
      const r = await backend.startDirtyTracking({ cntlid, ranges, pageSizeBytes }, backendContext(ctx));
      return { pageSizeBytes: r.pageSizeBytes };
    }),

    reportDirtyPages: unary("ReportDirtyPages", async (req: pb.ReportDirtyPagesRequest, ctx) => {
      const pages = checkDirtyReport(req.iova, req.lengthBytes, req.pageSizeBytes);
      const cntlid = authorize(ctx, req.cntlid);
      const bitmap = await backend.reportDirtyPages(
        { cntlid, iova: req.iova, lengthBytes: req.lengthBytes, pageSizeBytes: req.pageSizeBytes },
        backendContext(ctx),
      );
      const expected = Math.ceil(pages / 8);
      if (bitmap.length !== expected) {
        throw new ControlError(
          "internal",
          `backend returned a ${bitmap.length}-byte bitmap for ${pages} pages`,
        );
      }
      return { bitmap };
    }),

    stopDirtyTracking: unary("StopDirtyTracking", async (req: pb.StopDirtyTrackingRequest, ctx) => {
      await backend.stopDirtyTracking(authorize(ctx, req.cntlid), backendContext(ctx));
      return {};
    }),

    resetFunction: unary("ResetFunction", async (req: pb.ResetFunctionRequest, ctx) => {
      const cntlid = authorize(ctx, req.cntlid);
      const r = await backend.resetFunction({ cntlid, leaseId: req.leaseId }, backendContext(ctx));
      return { state: functionStates.toWire(r.state) };
    }),

    watchEvents: serverStream("WatchEvents", async (req: pb.WatchEventsRequest, ctx) => {
      if (ctx.allowed === null) {
        throw new ControlError(
          "permission-denied",
          `${ctx.identity} has no access to host ${options.authz.host}`,
        );
      }
      const requested = [...new Set(req.cntlids.map((c) => authorize(ctx, c)))];
      const wanted: readonly number[] | "all" =
        requested.length > 0 ? requested : ctx.allowed === "*" ? "all" : [...ctx.allowed];
      const visible = (cntlid: number): boolean =>
        isAllowed(ctx.allowed, cntlid) && (wanted === "all" || wanted.includes(cntlid));
      const events = backend.watchEvents(wanted, backendContext(ctx));
      return (async function* (): AsyncGenerator<pb.WatchEventsResponse> {
        let sequence = 0n;
        for await (const event of events) {
          if (visible(event.cntlid)) yield eventToWire(event, ++sequence);
        }
      })();
    }),

    acquireLease: unary("AcquireLease", async (req: pb.AcquireLeaseRequest, ctx) => {
      const description = checkDescription(req.description);
      const cntlid = authorize(ctx, req.cntlid);
      const lease = await backend.acquireLease(
        { cntlid, holder: ctx.identity, leaseMs: req.leaseMs, description },
        backendContext(ctx),
      );
      return { lease: leaseToWire(lease) };
    }),

    renewLease: unary("RenewLease", async (req: pb.RenewLeaseRequest, ctx) => {
      const cntlid = authorize(ctx, req.cntlid);
      const lease = await backend.renewLease(
        { cntlid, leaseId: req.leaseId, holder: ctx.identity, leaseMs: req.leaseMs },
        backendContext(ctx),
      );
      return { lease: leaseToWire(lease) };
    }),

    releaseLease: unary("ReleaseLease", async (req: pb.ReleaseLeaseRequest, ctx) => {
      const cntlid = authorize(ctx, req.cntlid);
      await backend.releaseLease({ cntlid, leaseId: req.leaseId, holder: ctx.identity }, backendContext(ctx));
      return {};
    }),

    readNamespaceData: serverStream("ReadNamespaceData", async (req: pb.ReadNamespaceDataRequest, ctx) => {
      const maxChunkBytes = resolveChunkBytes(req.maxChunkBytes);
      if (maxChunkBytes === undefined) {
        throw new ControlError(
          "invalid-argument",
          `max_chunk_bytes ${req.maxChunkBytes} outside 0..${MAX_CHUNK_BYTES}`,
        );
      }
      const nsid = checkNsid(req.nsid);
      const ranges = checkLbaRanges(req.ranges);
      const cntlid = authorize(ctx, req.cntlid);
      const reader = await backend.readNamespaceData({ cntlid, nsid, ranges }, backendContext(ctx));
      const lbaBytes = reader.lbaBytes;
      if (
        !Number.isInteger(lbaBytes) ||
        lbaBytes < 512 ||
        lbaBytes > 65536 ||
        (lbaBytes & (lbaBytes - 1)) !== 0
      ) {
        throw new ControlError("internal", `backend reported LBA size ${lbaBytes}`);
      }
      const blocksPerChunk = Math.floor(maxChunkBytes / lbaBytes);
      if (blocksPerChunk === 0) {
        throw new ControlError(
          "invalid-argument",
          `max_chunk_bytes ${maxChunkBytes} is below the LBA size ${lbaBytes}`,
        );
      }
      const chunkBytes = blocksPerChunk * lbaBytes;
      return (async function* (): AsyncGenerator<pb.ReadNamespaceDataResponse> {
        for await (const chunk of reader.chunks) {
          if (chunk.data.length % lbaBytes !== 0) {
            throw new ControlError(
              "internal",
              `backend chunk of ${chunk.data.length} bytes is not whole blocks`,
            );
          }
          for (let at = 0; at < chunk.data.length; at += chunkBytes) {
            yield {
              slba: chunk.slba + BigInt(at / lbaBytes),
              data: chunk.data.subarray(at, Math.min(at + chunkBytes, chunk.data.length)),
              lbaBytes,
            };
          }
        }
      })();
    }),

    writeNamespaceData: clientStream(
      "WriteNamespaceData",
      async (messages: AsyncIterator<pb.WriteNamespaceDataRequest>, ctx) => {
        const first = await messages.next();
        if (first.done)
          throw new ControlError("invalid-argument", "WriteNamespaceData stream carried no message");
        const nsid = checkNsid(first.value.nsid);
        const cntlid = authorize(ctx, first.value.cntlid);
        const signal = ctx.signal;
        const chunks = (async function* (): AsyncGenerator<NamespaceDataChunk> {
          let m: pb.WriteNamespaceDataRequest = first.value;
          for (;;) {
            if (signal.aborted) throw new ControlError("cancelled", "call cancelled");
            if ((m.cntlid !== 0 && m.cntlid !== cntlid) || (m.nsid !== 0 && m.nsid !== nsid)) {
              throw new ControlError("invalid-argument", "cntlid/nsid changed within the stream");
            }
            if (m.data.length === 0 || m.data.length > MAX_CHUNK_BYTES) {
              throw new ControlError(
                "invalid-argument",
                `data of ${m.data.length} bytes outside 1..${MAX_CHUNK_BYTES}`,
              );
            }
            yield { slba: m.slba, data: m.data };
            const next = await messages.next();
            if (next.done) return;
            m = next.value;
          }
        })();
        const r = await backend.writeNamespaceData({ cntlid, nsid }, chunks, backendContext(ctx));
        return { blocksWritten: r.blocksWritten };
      },
    ),
  };
}
