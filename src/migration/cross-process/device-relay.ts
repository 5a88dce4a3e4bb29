/**
 * A `DeviceEndpoint` relayed over a JSON request/reply channel (the line-JSON control channels): one
 * command, "device", with an `op` per endpoint method. Objects in, objects out — the channel adds its
 * own `id` and line framing. Bytes travel as base64 (RFC 4648, padded), u64 values as decimal strings.
 *
 *   remoteDeviceEndpoint (caller)                           serveDeviceRequest (next to the device)
 *     | request("device", {op:"setState", state:3}) ─────────► endpoint.setState(3)
 *     | ◄───────────── {ok:true} | {ok:false, errno:22, reachedState:2}
 *     | request("device", {op:"readData", maxBytes:1048576}) ► endpoint.readData(1048576)
 *     | ◄───────────── {ok:true, data:"<base64>"} | {ok:false, errno:42}
 *     | request("device", {op:"dmaLoggingReport", iova:"0", length:"33554432", pageSize:"4096",
 *     |                    bitmapBytes:1024}) ────────────────► endpoint.dmaLoggingReport(…, zeroed bitmap)
 *     | ◄───────────── {ok:true, bitmap:"<base64>"}            (OR-ed into the caller's bitmap)
 *     | ◄───────────── {ok:false, error:"bad-request"|"failed", message}   → the caller throws
 *
 *   op                request fields                                   ok reply fields
 *   migrationFlags    —                                                flags (integer)
 *   setState          state (u32 integer)                              — (failure: errno, reachedState)
 *   readData          maxBytes (integer 0..MAX_RELAY_DATA_BYTES)       data (base64)
 *   writeData         data (base64, ≤ MAX_RELAY_DATA_BYTES)            —
 *   precopyInfo       —                                                initialBytes, dirtyBytes (u64 strings)
 *   dataSize          —                                                stopCopyLength (u64 string)
 *   dmaLoggingStart   ranges [{iova, length}] (u64 strings, ≤ MAX_RELAY_RANGES), pageSize (u64 string)
 *   dmaLoggingReport  iova, length, pageSize (u64 strings), bitmapBytes (0..MAX_RELAY_BITMAP_BYTES)
 *                                                                      bitmap (base64, bitmapBytes long)
 *   dmaLoggingStop    —                                                —
 *   reset             —                                                —
 *
 * A device status is `{ok:false, errno}` (a positive integer) and is returned to the caller as such.
 * `{ok:false, error, message}` is not a device status: "bad-request" (a field missing or malformed — the
 * endpoint was not called) or "failed" (the endpoint threw: connection lost, a bug). The remote
 * endpoint throws a `DeviceRelayError` for it, and for a reply it cannot read ("bad-reply").
 *
 * Compatibility rule: ops and fields may be added, never renamed or given new meaning; unknown request
 * fields are ignored; an op the server does not know is a "bad-request" reply.
 */
import type { MigState } from "../../vfio/states.ts";
import type { DeviceEndpoint, DeviceResult } from "../endpoints.ts";

/** The channel command every op travels in. */
export const DEVICE_RELAY_COMMAND = "device";
/** Largest `readData` / `writeData` payload of one op, bytes (the orchestrator's largest chunk). */
export const MAX_RELAY_DATA_BYTES = 16 * 1024 * 1024;
/** Largest DMA logging bitmap of one op, bytes (the portal's own limit: 2 TiB at 4 KiB pages). */
export const MAX_RELAY_BITMAP_BYTES = 64 * 1024 * 1024;
/** Most ranges one `dmaLoggingStart` op carries (the device itself takes at most 256). */
export const MAX_RELAY_RANGES = 4096;

export type DeviceRelayOp =
  | "migrationFlags"
  | "setState"
  | "readData"
  | "writeData"
  | "precopyInfo"
  | "dataSize"
  | "dmaLoggingStart"
  | "dmaLoggingReport"
  | "dmaLoggingStop"
  | "reset";

export type DeviceRelayErrorCode =
  /** The server refused the request as malformed; the device was not called. */
  | "bad-request"
  /** The server's endpoint threw (connection to the device lost, a bug), or an unknown error code. */
  | "failed"
  /** The reply could not be read (wrong shape, bad base64, bad number). */
  | "bad-reply";

/** The one error type of the relay boundary (the remote endpoint's side). */
export class DeviceRelayError extends Error {
  override readonly name = "DeviceRelayError";
  constructor(
    readonly code: DeviceRelayErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

type Reply = Record<string, unknown>;

const U64_MAX = (1n << 64n) - 1n;
const DECIMAL = /^(0|[1-9][0-9]{0,19})$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

// ---------------------------------------------------------------- field codecs (both sides)

/** A field the request or reply got wrong: the message names it. */
class FieldError extends Error {}

function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
}

function fieldBytes(o: Reply, name: string, maxBytes: number): Uint8Array {
  const s = o[name];
  if (typeof s !== "string" || s.length % 4 !== 0 || !BASE64.test(s))
    throw new FieldError(`${name}: base64 expected`);
  if ((s.length / 4) * 3 > maxBytes + 2) throw new FieldError(`${name}: more than ${maxBytes} bytes`);
  const buf = Buffer.from(s, "base64");
  // Canonical form only (no stray bits in the padding): decoding must give back the same text.
  if (buf.toString("base64") !== s) throw new FieldError(`${name}: base64 not canonical`);
  if (buf.byteLength > maxBytes) throw new FieldError(`${name}: more than ${maxBytes} bytes`);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

function fieldU64(o: Reply, name: string, label = name): bigint {
  const s = o[name];
  if (typeof s !== "string" || !DECIMAL.test(s))
    throw new FieldError(`${label}: u64 decimal string expected`);
  const v = BigInt(s);
  if (v > U64_MAX) throw new FieldError(`${label}: above 2^64 - 1`);
  return v;
}

function fieldInt(o: Reply, name: string, lo: number, hi: number): number {
  const v = o[name];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < lo || v > hi)
    throw new FieldError(`${name}: integer ${lo}..${hi} expected`);
  return v;
}

function failure(errno: number): Reply {
  return { ok: false, errno };
}

function result(r: DeviceResult): Reply {
  return r.ok ? { ok: true } : failure(r.errno);
}

// ---------------------------------------------------------------- server side

/** Validates `req` and returns the call to make, or throws `FieldError`. */
function parseRequest(endpoint: DeviceEndpoint, req: Reply): () => Promise<Reply> {
  switch (req.op) {
    case "migrationFlags":
      return async () => ({ ok: true, flags: await endpoint.migrationFlags() });
    case "setState": {
      const state = fieldInt(req, "state", 0, 0xffff_ffff) as MigState;
      return async () => {
        const r = await endpoint.setState(state);
        return r.ok ? { ok: true } : { ok: false, errno: r.errno, reachedState: r.reachedState };
      };
    }
    case "readData": {
      const maxBytes = fieldInt(req, "maxBytes", 0, MAX_RELAY_DATA_BYTES);
      return async () => {
        const r = await endpoint.readData(maxBytes);
        return r.ok ? { ok: true, data: toBase64(r.bytes) } : failure(r.errno);
      };
    }
    case "writeData": {
      const data = fieldBytes(req, "data", MAX_RELAY_DATA_BYTES);
      return async () => result(await endpoint.writeData(data));
    }
    case "precopyInfo":
      return async () => {
        const r = await endpoint.precopyInfo();
        return r.ok
          ? { ok: true, initialBytes: r.initialBytes.toString(), dirtyBytes: r.dirtyBytes.toString() }
          : failure(r.errno);
      };
    case "dataSize":
      return async () => {
        const r = await endpoint.dataSize();
        return r.ok ? { ok: true, stopCopyLength: r.stopCopyLength.toString() } : failure(r.errno);
      };
    case "dmaLoggingStart": {
      const list = req.ranges;
      if (!Array.isArray(list) || list.length > MAX_RELAY_RANGES)
        throw new FieldError(`ranges: an array of at most ${MAX_RELAY_RANGES} ranges expected`);
      const ranges = list.map((x: unknown, i) => {
        if (typeof x !== "object" || x === null || Array.isArray(x))
          throw new FieldError(`ranges[${i}]: {iova, length} expected`);
        const o = x as Reply;
        return {
          iova: fieldU64(o, "iova", `ranges[${i}].iova`),
          length: fieldU64(o, "length", `ranges[${i}].length`),
        };
      });
      const pageSize = fieldU64(req, "pageSize");
      return async () => result(await endpoint.dmaLoggingStart(ranges, pageSize));
    }
    case "dmaLoggingReport": {
      const iova = fieldU64(req, "iova");
      const length = fieldU64(req, "length");
      const pageSize = fieldU64(req, "pageSize");
      const bitmapBytes = fieldInt(req, "bitmapBytes", 0, MAX_RELAY_BITMAP_BYTES);
      return async () => {
        const bitmap = new Uint8Array(bitmapBytes);
        const r = await endpoint.dmaLoggingReport(iova, length, pageSize, bitmap);
        return r.ok ? { ok: true, bitmap: toBase64(bitmap) } : failure(r.errno);
      };
    }
    case "dmaLoggingStop":
      return async () => result(await endpoint.dmaLoggingStop());
    case "reset":
      return async () => {
        await endpoint.reset();
        return { ok: true };
      };
    default:
      throw new FieldError(
        typeof req.op === "string" ? `unknown op ${JSON.stringify(req.op)}` : "op: a string expected",
      );
  }
}

/**
 * Serves one "device" request on `endpoint`. Never throws: a malformed request is answered
 * `{ok:false, error:"bad-request", message}` without calling the endpoint; an endpoint that throws is
 * answered `{ok:false, error:"failed", message}`. Fields other than the op's (`id`, `cmd`) are ignored.
 */
export async function serveDeviceRequest(endpoint: DeviceEndpoint, req: Reply): Promise<Reply> {
  let call: () => Promise<Reply>;
  try {
    if (typeof req !== "object" || req === null || Array.isArray(req))
      throw new FieldError("request: an object expected");
    call = parseRequest(endpoint, req);
  } catch (e) {
    return { ok: false, error: "bad-request", message: e instanceof Error ? e.message : String(e) };
  }
  try {
    return await call();
  } catch (e) {
    return { ok: false, error: "failed", message: e instanceof Error ? e.message : String(e) };
  }
}

// ---------------------------------------------------------------- client side

/** A device status as relayed: a positive integer errno. */
function replyErrno(r: Reply): number {
  return fieldInt(r, "errno", 1, 0xffff_ffff);
}

/**
 * A `DeviceEndpoint` whose every call is one or more `request("device", {op, …})` on a JSON channel
 * served by `serveDeviceRequest`. Device errnos come back as statuses; an `error` reply, a reply that
 * cannot be read, or a rejected `request` make the call reject (`DeviceRelayError`, or the channel's
 * own error). Reads ask for at most `MAX_RELAY_DATA_BYTES`; longer writes go as several ops.
 */
export function remoteDeviceEndpoint(
  request: (cmd: string, args: Record<string, unknown>) => Promise<Record<string, unknown>>,
): DeviceEndpoint {
  /** The ok reply, or the failure reply carrying an errno; throws for anything else. */
  const call = async (op: DeviceRelayOp, args: Reply = {}): Promise<Reply> => {
    const reply = await request(DEVICE_RELAY_COMMAND, { op, ...args });
    if (typeof reply !== "object" || reply === null || Array.isArray(reply))
      throw new DeviceRelayError("bad-reply", `${op}: reply is not an object`);
    if (typeof reply.error === "string") {
      const message = typeof reply.message === "string" ? reply.message : "(no message)";
      const code = reply.error === "bad-request" ? "bad-request" : "failed";
      throw new DeviceRelayError(code, `${op}: ${reply.error}: ${message}`);
    }
    if (reply.ok === true || reply.ok === false) return reply;
    throw new DeviceRelayError("bad-reply", `${op}: reply has no ok field`);
  };

  /** Reads the reply with `read`; a field it gets wrong is a bad reply. */
  const decode = <T>(op: DeviceRelayOp, reply: Reply, read: (r: Reply) => T): T => {
    try {
      return read(reply);
    } catch (e) {
      if (e instanceof FieldError)
        throw new DeviceRelayError("bad-reply", `${op}: ${e.message}`, { cause: e });
      throw e;
    }
  };

  const status = async (op: DeviceRelayOp, args: Reply = {}): Promise<DeviceResult> => {
    const r = await call(op, args);
    return r.ok === true ? { ok: true } : { ok: false, errno: decode(op, r, replyErrno) };
  };

  return {
    async migrationFlags() {
      const r = await call("migrationFlags");
      if (r.ok !== true) throw new DeviceRelayError("bad-reply", "migrationFlags: a failure reply");
      return decode("migrationFlags", r, (x) => fieldInt(x, "flags", 0, 0xffff_ffff));
    },

    async setState(target: MigState) {
      const r = await call("setState", { state: target });
      if (r.ok === true) return { ok: true };
      return decode("setState", r, (x) => ({
        ok: false as const,
        errno: replyErrno(x),
        reachedState: fieldInt(x, "reachedState", 0, 0xffff_ffff),
      }));
    },

    async readData(maxBytes: number) {
      const r = await call("readData", { maxBytes: Math.min(maxBytes, MAX_RELAY_DATA_BYTES) });
      if (r.ok !== true) return { ok: false, errno: decode("readData", r, replyErrno) };
      return { ok: true, bytes: decode("readData", r, (x) => fieldBytes(x, "data", MAX_RELAY_DATA_BYTES)) };
    },

    async writeData(bytes: Uint8Array) {
      let at = 0;
      do {
        const piece = bytes.subarray(at, at + MAX_RELAY_DATA_BYTES);
        const r = await status("writeData", { data: toBase64(piece) });
        if (!r.ok) return r;
        at += piece.byteLength;
      } while (at < bytes.byteLength);
      return { ok: true };
    },

    async precopyInfo() {
      const r = await call("precopyInfo");
      if (r.ok !== true) return { ok: false, errno: decode("precopyInfo", r, replyErrno) };
      return decode("precopyInfo", r, (x) => ({
        ok: true as const,
        initialBytes: fieldU64(x, "initialBytes"),
        dirtyBytes: fieldU64(x, "dirtyBytes"),
      }));
    },

    async dataSize() {
      const r = await call("dataSize");
      if (r.ok !== true) return { ok: false, errno: decode("dataSize", r, replyErrno) };
      return decode("dataSize", r, (x) => ({
        ok: true as const,
        stopCopyLength: fieldU64(x, "stopCopyLength"),
      }));
    },

    dmaLoggingStart(ranges, pageSize) {
      return status("dmaLoggingStart", {
        ranges: ranges.map((x) => ({ iova: x.iova.toString(), length: x.length.toString() })),
        pageSize: pageSize.toString(),
      });
    },

    async dmaLoggingReport(iova, length, pageSize, bitmap) {
      const bitmapBytes = Math.min(bitmap.byteLength, MAX_RELAY_BITMAP_BYTES);
      const r = await call("dmaLoggingReport", {
        iova: iova.toString(),
        length: length.toString(),
        pageSize: pageSize.toString(),
        bitmapBytes,
      });
      if (r.ok !== true) return { ok: false, errno: decode("dmaLoggingReport", r, replyErrno) };
      const got = decode("dmaLoggingReport", r, (x) => fieldBytes(x, "bitmap", bitmapBytes));
      if (got.byteLength !== bitmapBytes)
        throw new DeviceRelayError("bad-reply", `dmaLoggingReport: bitmap of ${got.byteLength} bytes`);
      for (let i = 0; i < got.byteLength; i++) bitmap[i]! |= got[i]!;
      return { ok: true };
    },

    dmaLoggingStop() {
      return status("dmaLoggingStop");
    },

    async reset() {
      const r = await call("reset");
      if (r.ok !== true) throw new DeviceRelayError("bad-reply", "reset: a failure reply");
    },
  };
}
