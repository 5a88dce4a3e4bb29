/**
 * Typed client of the control plane, for the orchestrator and tools. Every RPC is a method taking
 * and returning the domain types of backend.ts: unary RPCs return promises, server streams are
 * async iterables (breaking out of `for await` cancels the call), client streams take an
 * (async) iterable and honour backpressure. Every failure is a ControlError whose code mirrors the
 * gRPC status (errors.ts). What a client sees on a TLS listener:
 *
 *   valid client certificate, authorized          → the result
 *   valid certificate, function not authorized    → ControlError permission-denied
 *   no certificate / certificate of another CA    → ControlError unauthenticated (default server)
 *                                                   or unavailable (server with
 *                                                   rejectUnverifiedAtHandshake: TLS alert)
 *   server certificate not from `tls.ca`          → ControlError unavailable
 *
 *   const c = connectControl({ target: "127.0.0.1:7443", tls: readTlsFiles({...}) });
 *   for (const f of await c.listFunctions()) console.log(f.cntlid, f.state);
 *   const state = await c.readControllerState({ cntlid: 3 });
 *   c.close();
 */
import {
  type ChannelCredentials,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ClientWritableStream,
  credentials,
  type CallOptions as GrpcCallOptions,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import { HealthCheckResponse_ServingStatus, HealthClient } from "../gen/grpc/health/v1/health.ts";
import * as pb from "../gen/nvmig/v1/migration.ts";
import type {
  ChangedLbaRange,
  FunctionDetails,
  FunctionInfo,
  FunctionState,
  LbaRange,
  LeaseInfo,
  MemoryRange,
  NamespaceDataChunk,
  SequencedControlEvent,
  SuspendType,
} from "./backend.ts";
import type { TlsMaterial } from "./certs.ts";
import {
  changedRangeFromWire,
  detailsFromWire,
  eventFromWire,
  functionInfoFromWire,
  leaseFromWire,
  stateFromWire,
  suspendTypes,
} from "./convert.ts";
import { ControlError, fromGrpcError } from "./errors.ts";
import { DEFAULT_MAX_CONTROLLER_STATE_BYTES } from "./limits.ts";
import { ControllerStateAssembler, type ControllerStateChunk, chunkControllerState } from "./state-chunks.ts";
import { writeAll } from "./stream-write.ts";

export interface ClientTlsOptions extends TlsMaterial {
  /** Name to check the server certificate against instead of the target host. Default: the target host. */
  serverName?: string;
}

export interface ConnectControlOptions {
  /** "host:port" (TCP) or "unix:/absolute/path" (UNIX socket, always plain text). */
  target: string;
  /** Mutual TLS for TCP targets: CA of the server, own certificate and key. */
  tls?: ClientTlsOptions;
  /** Plain-text TCP (tests against an insecure listener). Default false. */
  insecure?: boolean;
  /** Deadline of unary RPCs without their own, ms. Default 30 000; 0 = none. Streams have none by default. */
  defaultUnaryDeadlineMs?: number;
  /** Largest state readControllerState accepts, bytes. Default 64 MiB. */
  maxControllerStateBytes?: number;
}

export interface CallOptions {
  /** Deadline of this call, ms from now (covers the whole stream for streaming RPCs). */
  deadlineMs?: number;
  /** Cancels the call. */
  signal?: AbortSignal;
}

export type HealthStatus = "serving" | "not-serving" | "service-unknown" | "unknown";

export interface StateSelector {
  cntlid: number;
  /** CSVI, default 0 (device default). */
  csvi?: number;
  /** CSUUIDI, default 0. */
  csuuidi?: number;
}

export interface ControlClient {
  listFunctions(opts?: CallOptions): Promise<FunctionInfo[]>;
  describeFunction(cntlid: number, opts?: CallOptions): Promise<FunctionDetails>;
  suspend(
    params: { cntlid: number; suspendType: SuspendType; deleteUdmq?: boolean; leaseId?: string },
    opts?: CallOptions,
  ): Promise<{ state: FunctionState }>;
  resume(params: { cntlid: number; leaseId?: string }, opts?: CallOptions): Promise<{ state: FunctionState }>;
  /** Raw chunks as the server sends them (e.g. to forward into another host's setControllerState). */
  getControllerState(
    params: StateSelector & { maxChunkBytes?: number },
    opts?: CallOptions,
  ): AsyncIterable<ControllerStateChunk>;
  /** The whole state, reassembled; a malformed stream or CRC mismatch throws `internal`. */
  readControllerState(
    params: StateSelector & { maxChunkBytes?: number },
    opts?: CallOptions,
  ): Promise<Uint8Array>;
  /** Sends chunks (the header goes in the first message); the server applies after the last one. */
  setControllerState(
    header: StateSelector & { leaseId?: string },
    chunks: AsyncIterable<ControllerStateChunk> | Iterable<ControllerStateChunk>,
    opts?: CallOptions,
  ): Promise<{ appliedBytes: bigint; state: FunctionState }>;
  /** Chunks `state` (default 1 MiB chunks) and sends it with setControllerState. */
  writeControllerState(
    params: StateSelector & { leaseId?: string; state: Uint8Array; chunkBytes?: number },
    opts?: CallOptions,
  ): Promise<{ appliedBytes: bigint; state: FunctionState }>;
  startUserDataLogging(cntlid: number, opts?: CallOptions): Promise<void>;
  stopUserDataLogging(cntlid: number, opts?: CallOptions): Promise<void>;
  streamChangedLbaRanges(cntlid: number, opts?: CallOptions): AsyncIterable<ChangedLbaRange[]>;
  startDirtyTracking(
    params: { cntlid: number; ranges: MemoryRange[]; pageSizeBytes: bigint },
    opts?: CallOptions,
  ): Promise<{ pageSizeBytes: bigint }>;
  reportDirtyPages(
    params: { cntlid: number; iova: bigint; lengthBytes: bigint; pageSizeBytes: bigint },
    opts?: CallOptions,
  ): Promise<Uint8Array>;
  stopDirtyTracking(cntlid: number, opts?: CallOptions): Promise<void>;
  resetFunction(
    params: { cntlid: number; leaseId?: string },
    opts?: CallOptions,
  ): Promise<{ state: FunctionState }>;
  /** Events of the given functions (default: all the caller may see); unknown event kinds are skipped. */
  watchEvents(params?: { cntlids?: number[] }, opts?: CallOptions): AsyncIterable<SequencedControlEvent>;
  acquireLease(
    params: { cntlid: number; leaseMs?: number; description?: string },
    opts?: CallOptions,
  ): Promise<LeaseInfo>;
  renewLease(
    params: { cntlid: number; leaseId: string; leaseMs?: number },
    opts?: CallOptions,
  ): Promise<LeaseInfo>;
  releaseLease(params: { cntlid: number; leaseId: string }, opts?: CallOptions): Promise<void>;
  readNamespaceData(
    params: { cntlid: number; nsid: number; ranges: LbaRange[]; maxChunkBytes?: number },
    opts?: CallOptions,
  ): AsyncIterable<NamespaceDataChunk & { lbaBytes: number }>;
  writeNamespaceData(
    params: { cntlid: number; nsid: number },
    chunks: AsyncIterable<NamespaceDataChunk> | Iterable<NamespaceDataChunk>,
    opts?: CallOptions,
  ): Promise<{ blocksWritten: bigint }>;
  /** grpc.health.v1 Check of `service` ("" = the server). */
  checkHealth(service?: string, opts?: CallOptions): Promise<HealthStatus>;
  /** Closes the channel; calls in flight are cancelled. */
  close(): void;
}

type Callback<Res> = (error: ServiceError | null, response?: Res) => void;

function channelCredentials(options: ConnectControlOptions): ChannelCredentials {
  if (options.target.startsWith("unix:")) return credentials.createInsecure();
  if (options.insecure === true) return credentials.createInsecure();
  if (options.tls === undefined) {
    throw new ControlError(
      "invalid-argument",
      "connectControl: a TCP target needs `tls` (or `insecure: true` for tests)",
    );
  }
  return credentials.createSsl(
    Buffer.from(options.tls.ca),
    Buffer.from(options.tls.key),
    Buffer.from(options.tls.cert),
  );
}

/** Connects lazily (the first call opens the channel). See the file head. */
export function connectControl(options: ConnectControlOptions): ControlClient {
  const channelOptions: Record<string, string | number> = {};
  if (options.tls?.serverName !== undefined)
    channelOptions["grpc.ssl_target_name_override"] = options.tls.serverName;
  const raw = new pb.MigrationServiceClient(options.target, channelCredentials(options), channelOptions);
  const health = new HealthClient(options.target, credentials.createInsecure(), {
    channelOverride: raw.getChannel(),
  });
  const defaultUnaryDeadlineMs = options.defaultUnaryDeadlineMs ?? 30_000;
  const maxStateBytes = options.maxControllerStateBytes ?? DEFAULT_MAX_CONTROLLER_STATE_BYTES;

  const grpcOptions = (opts: CallOptions | undefined, fallbackMs: number): Partial<GrpcCallOptions> => {
    const ms = opts?.deadlineMs ?? fallbackMs;
    return ms > 0 ? { deadline: Date.now() + ms } : {};
  };

  function unary<Res>(
    opts: CallOptions | undefined,
    start: (md: Metadata, o: Partial<GrpcCallOptions>, cb: Callback<Res>) => ClientUnaryCall,
  ): Promise<Res> {
    const signal = opts?.signal;
    if (signal?.aborted)
      return Promise.reject(new ControlError("cancelled", "call cancelled before it started"));
    return new Promise<Res>((resolve, reject) => {
      const onAbort = (): void => call.cancel();
      const call = start(new Metadata(), grpcOptions(opts, defaultUnaryDeadlineMs), (error, response) => {
        signal?.removeEventListener("abort", onAbort);
        if (error !== null) reject(fromGrpcError(error));
        else if (response === undefined) reject(new ControlError("internal", "empty response"));
        else resolve(response);
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async function* serverStream<Res>(
    opts: CallOptions | undefined,
    start: (md: Metadata, o: Partial<GrpcCallOptions>) => ClientReadableStream<Res>,
  ): AsyncGenerator<Res> {
    const signal = opts?.signal;
    if (signal?.aborted) throw new ControlError("cancelled", "call cancelled before it started");
    const call = start(new Metadata(), grpcOptions(opts, 0));
    const onAbort = (): void => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const message of call as AsyncIterable<Res>) yield message;
    } catch (e) {
      throw fromGrpcError(e);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      call.cancel();
    }
  }

  async function clientStream<Req, Res>(
    opts: CallOptions | undefined,
    messages: AsyncIterable<Req> | Iterable<Req>,
    start: (md: Metadata, o: Partial<GrpcCallOptions>, cb: Callback<Res>) => ClientWritableStream<Req>,
  ): Promise<Res> {
    const signal = opts?.signal;
    if (signal?.aborted) throw new ControlError("cancelled", "call cancelled before it started");
    const answered = new AbortController();
    let call: ClientWritableStream<Req> | undefined;
    const result = new Promise<Res>((resolve, reject) => {
      call = start(new Metadata(), grpcOptions(opts, 0), (error, response) => {
        answered.abort();
        if (error !== null) reject(fromGrpcError(error));
        else if (response === undefined) reject(new ControlError("internal", "empty response"));
        else resolve(response);
      });
    });
    const stream = call as ClientWritableStream<Req>;
    const onAbort = (): void => stream.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const stop = signal === undefined ? answered.signal : AbortSignal.any([answered.signal, signal]);
      await writeAll(stream, messages, stop);
      stream.end();
    } catch (e) {
      // The server answered early (its answer wins) or the producer / the caller failed.
      if (!answered.signal.aborted) {
        stream.cancel();
        result.catch(() => {});
        throw ControlError.is(e) ? e : ControlError.from(e);
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    return await result;
  }

  const state = (s: { state: number }): { state: FunctionState } => ({ state: stateFromWire(s.state) });

  const client: ControlClient = {
    async listFunctions(opts) {
      const r = await unary<pb.ListFunctionsResponse>(opts, (md, o, cb) => raw.listFunctions({}, md, o, cb));
      return r.functions.map(functionInfoFromWire);
    },
    async describeFunction(cntlid, opts) {
      const r = await unary<pb.DescribeFunctionResponse>(opts, (md, o, cb) =>
        raw.describeFunction({ cntlid }, md, o, cb),
      );
      const details = detailsFromWire(r);
      if (details === undefined)
        throw new ControlError("internal", "DescribeFunction response without a function");
      return details;
    },
    async suspend(p, opts) {
      const request: pb.SuspendRequest = {
        cntlid: p.cntlid,
        suspendType: suspendTypes.toWire(p.suspendType),
        deleteUdmq: p.deleteUdmq ?? false,
        leaseId: p.leaseId ?? "",
      };
      return state(await unary<pb.SuspendResponse>(opts, (md, o, cb) => raw.suspend(request, md, o, cb)));
    },
    async resume(p, opts) {
      const request = { cntlid: p.cntlid, leaseId: p.leaseId ?? "" };
      return state(await unary<pb.ResumeResponse>(opts, (md, o, cb) => raw.resume(request, md, o, cb)));
    },
    getControllerState(p, opts) {
      const request: pb.GetControllerStateRequest = {
        cntlid: p.cntlid,
        csvi: p.csvi ?? 0,
        csuuidi: p.csuuidi ?? 0,
        maxChunkBytes: p.maxChunkBytes ?? 0,
      };
      return serverStream<pb.GetControllerStateResponse>(opts, (md, o) =>
        raw.getControllerState(request, md, o),
      );
    },
    async readControllerState(p, opts) {
      const assembler = new ControllerStateAssembler({ maxBytes: maxStateBytes, errorCode: "internal" });
      for await (const chunk of client.getControllerState(p, opts)) assembler.push(chunk);
      return assembler.finish();
    },
    setControllerState(header, chunks, opts) {
      const messages = (async function* (): AsyncGenerator<pb.SetControllerStateRequest> {
        let first = true;
        for await (const c of chunks) {
          yield {
            cntlid: first ? header.cntlid : 0,
            csvi: first ? (header.csvi ?? 0) : 0,
            csuuidi: first ? (header.csuuidi ?? 0) : 0,
            leaseId: first ? (header.leaseId ?? "") : "",
            totalBytes: c.totalBytes,
            offsetBytes: c.offsetBytes,
            data: c.data,
            last: c.last,
            crc32c: c.crc32c,
          };
          first = false;
        }
      })();
      return clientStream<pb.SetControllerStateRequest, pb.SetControllerStateResponse>(
        opts,
        messages,
        (md, o, cb) => raw.setControllerState(md, o, cb),
      ).then((r) => ({ appliedBytes: r.appliedBytes, state: stateFromWire(r.state) }));
    },
    writeControllerState(p, opts) {
      return client.setControllerState(p, chunkControllerState(p.state, p.chunkBytes ?? 1 << 20), opts);
    },
    async startUserDataLogging(cntlid, opts) {
      await unary<pb.StartUserDataLoggingResponse>(opts, (md, o, cb) =>
        raw.startUserDataLogging({ cntlid }, md, o, cb),
      );
    },
    async stopUserDataLogging(cntlid, opts) {
      await unary<pb.StopUserDataLoggingResponse>(opts, (md, o, cb) =>
        raw.stopUserDataLogging({ cntlid }, md, o, cb),
      );
    },
    async *streamChangedLbaRanges(cntlid, opts) {
      for await (const m of serverStream<pb.StreamChangedLbaRangesResponse>(opts, (md, o) =>
        raw.streamChangedLbaRanges({ cntlid }, md, o),
      )) {
        yield m.ranges.map(changedRangeFromWire);
      }
    },
    async startDirtyTracking(p, opts) {
      const request = { cntlid: p.cntlid, ranges: p.ranges, pageSizeBytes: p.pageSizeBytes };
      const r = await unary<pb.StartDirtyTrackingResponse>(opts, (md, o, cb) =>
        raw.startDirtyTracking(request, md, o, cb),
      );
      return { pageSizeBytes: r.pageSizeBytes };
    },
    async reportDirtyPages(p, opts) {
      const request = {
        cntlid: p.cntlid,
        iova: p.iova,
        lengthBytes: p.lengthBytes,
        pageSizeBytes: p.pageSizeBytes,
      };
      const r = await unary<pb.ReportDirtyPagesResponse>(opts, (md, o, cb) =>
        raw.reportDirtyPages(request, md, o, cb),
      );
      return r.bitmap;
    },
    async stopDirtyTracking(cntlid, opts) {
      await unary<pb.StopDirtyTrackingResponse>(opts, (md, o, cb) =>
        raw.stopDirtyTracking({ cntlid }, md, o, cb),
      );
    },
    async resetFunction(p, opts) {
      const request = { cntlid: p.cntlid, leaseId: p.leaseId ?? "" };
      return state(
        await unary<pb.ResetFunctionResponse>(opts, (md, o, cb) => raw.resetFunction(request, md, o, cb)),
      );
    },
    async *watchEvents(p, opts) {
      const request = { cntlids: p?.cntlids ?? [] };
      for await (const m of serverStream<pb.WatchEventsResponse>(opts, (md, o) =>
        raw.watchEvents(request, md, o),
      )) {
        const event = eventFromWire(m);
        if (event !== undefined) yield event;
      }
    },
    async acquireLease(p, opts) {
      const request = { cntlid: p.cntlid, leaseMs: p.leaseMs ?? 0, description: p.description ?? "" };
      const r = await unary<pb.AcquireLeaseResponse>(opts, (md, o, cb) =>
        raw.acquireLease(request, md, o, cb),
      );
      if (r.lease === undefined) throw new ControlError("internal", "AcquireLease response without a lease");
      return leaseFromWire(r.lease);
    },
    async renewLease(p, opts) {
      const request = { cntlid: p.cntlid, leaseId: p.leaseId, leaseMs: p.leaseMs ?? 0 };
      const r = await unary<pb.RenewLeaseResponse>(opts, (md, o, cb) => raw.renewLease(request, md, o, cb));
      if (r.lease === undefined) throw new ControlError("internal", "RenewLease response without a lease");
      return leaseFromWire(r.lease);
    },
    async releaseLease(p, opts) {
      const request = { cntlid: p.cntlid, leaseId: p.leaseId };
      await unary<pb.ReleaseLeaseResponse>(opts, (md, o, cb) => raw.releaseLease(request, md, o, cb));
    },
    async *readNamespaceData(p, opts) {
      const request: pb.ReadNamespaceDataRequest = {
        cntlid: p.cntlid,
        nsid: p.nsid,
        ranges: p.ranges,
        maxChunkBytes: p.maxChunkBytes ?? 0,
      };
      for await (const m of serverStream<pb.ReadNamespaceDataResponse>(opts, (md, o) =>
        raw.readNamespaceData(request, md, o),
      )) {
        yield { slba: m.slba, data: m.data, lbaBytes: m.lbaBytes };
      }
    },
    async writeNamespaceData(p, chunks, opts) {
      const messages = (async function* (): AsyncGenerator<pb.WriteNamespaceDataRequest> {
        let first = true;
        for await (const c of chunks) {
          yield { cntlid: first ? p.cntlid : 0, nsid: first ? p.nsid : 0, slba: c.slba, data: c.data };
          first = false;
        }
      })();
      const r = await clientStream<pb.WriteNamespaceDataRequest, pb.WriteNamespaceDataResponse>(
        opts,
        messages,
        (md, o, cb) => raw.writeNamespaceData(md, o, cb),
      );
      return { blocksWritten: r.blocksWritten };
    },
    async checkHealth(service = "", opts) {
      const r = await unary<{ status: HealthCheckResponse_ServingStatus }>(opts, (md, o, cb) =>
        health.check({ service }, md, o, cb),
      );
      switch (r.status) {
        case HealthCheckResponse_ServingStatus.SERVING:
          return "serving";
        case HealthCheckResponse_ServingStatus.NOT_SERVING:
          return "not-serving";
        case HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN:
          return "service-unknown";
        default:
          return "unknown";
      }
    },
    close() {
      health.close();
      raw.close();
    },
  };
  return client;
}
