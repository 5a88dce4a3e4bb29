/**
 * VERSION (command 1), spec "Version". Request and reply share one layout:
 *
 *   off 0 u16 major · off 2 u16 minor · off 4 optional UTF-8 JSON, NUL-terminated:
 *   {"capabilities": {"max_msg_fds": n, "max_data_xfer_size": n, "max_dma_maps": n, "pgsizes": n,
 *                     "migration": {"pgsize": n, "max_bitmap_size": n}, "write_multiple": bool,
 *                     "twin_socket": {"supported": bool, "fd_index": n}}}
 *
 *   client                         server
 *     | VERSION 0.m {caps}  ───────► |  major ≠ ours → close the connection
 *     | ◄─────── VERSION 0.min(m,2) {our caps}
 *
 * Negotiation rules: reply major = proposed major (else the server closes); reply minor ≤ proposed;
 * reply capabilities drawn from what the client proposed (we never offer twin_socket, and offer
 * write_multiple only if the client proposed it). Absent keys take the spec defaults
 * (`CapabilityDefault`). Unknown keys are ignored (forward compatibility); a JSON text that is not
 * an object, or a known key with the wrong type, is refused with EINVAL.
 */
import { CapabilityDefault, Errno } from "./constants.ts";
import { type DecodeError, decodeError, isDecodeError, tooShort, viewOf } from "./wire.ts";

/** Fixed part of the VERSION payload: major u16 + minor u16. */
export const VERSION_FIXED_BYTES = 4;

export interface VersionCapabilities {
  /** Most fds the sender can receive in one message. */
  maxMsgFds?: number;
  /** Largest `count` of one REGION/DMA read or write the sender accepts, bytes. */
  maxDataXferSize?: number;
  maxDmaMaps?: number;
  /** DMA page sizes, OR-ed together. */
  pgsizes?: number;
  migration?: { pgsize?: number; maxBitmapSize?: number };
  writeMultiple?: boolean;
  twinSocket?: { supported?: boolean; fdIndex?: number };
}

export interface VersionMessage {
  major: number;
  minor: number;
  /** Undefined when the message carries no JSON at all (SPDK sends none). */
  capabilities?: VersionCapabilities;
}

/** Capabilities of a peer after applying the spec defaults. */
export interface EffectiveCapabilities {
  maxMsgFds: number;
  maxDataXferSize: number;
  maxDmaMaps: number;
  pgsizes: number;
  migration?: { pgsize?: number; maxBitmapSize?: number };
  writeMultiple: boolean;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();

/** The JSON object for `caps`, with the spec's snake_case keys. */
export function capabilitiesToJson(caps: VersionCapabilities): Record<string, unknown> {
  const c: Record<string, unknown> = {};
  if (caps.maxMsgFds !== undefined) c.max_msg_fds = caps.maxMsgFds;
  if (caps.maxDataXferSize !== undefined) c.max_data_xfer_size = caps.maxDataXferSize;
  if (caps.maxDmaMaps !== undefined) c.max_dma_maps = caps.maxDmaMaps;
  if (caps.pgsizes !== undefined) c.pgsizes = caps.pgsizes;
  if (caps.migration !== undefined) {
    const m: Record<string, unknown> = {};
    if (caps.migration.pgsize !== undefined) m.pgsize = caps.migration.pgsize;
    if (caps.migration.maxBitmapSize !== undefined) m.max_bitmap_size = caps.migration.maxBitmapSize;
    c.migration = m;
  }
  if (caps.writeMultiple !== undefined) c.write_multiple = caps.writeMultiple;
  if (caps.twinSocket !== undefined) {
    const t: Record<string, unknown> = {};
    if (caps.twinSocket.supported !== undefined) t.supported = caps.twinSocket.supported;
    if (caps.twinSocket.fdIndex !== undefined) t.fd_index = caps.twinSocket.fdIndex;
    c.twin_socket = t;
  }
  return { capabilities: c };
}

export function encodeVersion(msg: VersionMessage): Uint8Array {
  const json =
    msg.capabilities === undefined
      ? undefined
      : utf8Encoder.encode(JSON.stringify(capabilitiesToJson(msg.capabilities)));
  const out = new Uint8Array(VERSION_FIXED_BYTES + (json === undefined ? 0 : json.byteLength + 1));
  const v = viewOf(out);
  v.setUint16(0, msg.major, true);
  v.setUint16(2, msg.minor, true);
  if (json !== undefined) out.set(json, VERSION_FIXED_BYTES); // the last byte stays 0: the NUL
  return out;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function optCount(o: Record<string, unknown>, key: string, min: number): number | undefined | DecodeError {
  const x = o[key];
  if (x === undefined) return undefined;
  if (typeof x !== "number" || !Number.isSafeInteger(x) || x < min) {
    return decodeError(Errno.EINVAL, `capability-${key}-invalid`);
  }
  return x;
}

function optBool(o: Record<string, unknown>, key: string): boolean | undefined | DecodeError {
  const x = o[key];
  if (x === undefined) return undefined;
  if (typeof x !== "boolean") return decodeError(Errno.EINVAL, `capability-${key}-invalid`);
  return x;
}

/** Validates a parsed JSON value as the VERSION object and extracts the capabilities. */
export function parseCapabilities(json: unknown): VersionCapabilities | DecodeError {
  if (!isPlainObject(json)) return decodeError(Errno.EINVAL, "json-not-object");
  const raw = json.capabilities;
  if (raw === undefined) return {};
  if (!isPlainObject(raw)) return decodeError(Errno.EINVAL, "capabilities-not-object");
  const caps: VersionCapabilities = {};
  const maxMsgFds = optCount(raw, "max_msg_fds", 0);
  if (isDecodeError(maxMsgFds)) return maxMsgFds;
  if (maxMsgFds !== undefined) caps.maxMsgFds = maxMsgFds;
  const xfer = optCount(raw, "max_data_xfer_size", 1);
  if (isDecodeError(xfer)) return xfer;
  if (xfer !== undefined) caps.maxDataXferSize = xfer;
  const maps = optCount(raw, "max_dma_maps", 0);
  if (isDecodeError(maps)) return maps;
  if (maps !== undefined) caps.maxDmaMaps = maps;
  const pgsizes = optCount(raw, "pgsizes", 0);
  if (isDecodeError(pgsizes)) return pgsizes;
  if (pgsizes !== undefined) caps.pgsizes = pgsizes;
  const wm = optBool(raw, "write_multiple");
  if (isDecodeError(wm)) return wm;
  if (wm !== undefined) caps.writeMultiple = wm;
  if (raw.migration !== undefined) {
    if (!isPlainObject(raw.migration)) return decodeError(Errno.EINVAL, "capability-migration-invalid");
    const pgsize = optCount(raw.migration, "pgsize", 0);
    if (isDecodeError(pgsize)) return pgsize;
    const bitmap = optCount(raw.migration, "max_bitmap_size", 0);
    if (isDecodeError(bitmap)) return bitmap;
    caps.migration = {};
    if (pgsize !== undefined) caps.migration.pgsize = pgsize;
    if (bitmap !== undefined) caps.migration.maxBitmapSize = bitmap;
  }
  if (raw.twin_socket !== undefined) {
    if (!isPlainObject(raw.twin_socket)) return decodeError(Errno.EINVAL, "capability-twin_socket-invalid");
    const supported = optBool(raw.twin_socket, "supported");
    if (isDecodeError(supported)) return supported;
    const fdIndex = optCount(raw.twin_socket, "fd_index", 0);
    if (isDecodeError(fdIndex)) return fdIndex;
    caps.twinSocket = {};
    if (supported !== undefined) caps.twinSocket.supported = supported;
    if (fdIndex !== undefined) caps.twinSocket.fdIndex = fdIndex;
  }
  return caps;
}

/**
 * Decodes a VERSION payload. The JSON part is optional; it ends at the first NUL (bytes after it are
 * ignored); a payload of only a NUL counts as "no JSON". Invalid UTF-8 or JSON → EINVAL.
 */
export function decodeVersion(payload: Uint8Array): VersionMessage | DecodeError {
  if (payload.byteLength < VERSION_FIXED_BYTES) return tooShort("version");
  const v = viewOf(payload);
  const msg: VersionMessage = { major: v.getUint16(0, true), minor: v.getUint16(2, true) };
  const rest = payload.subarray(VERSION_FIXED_BYTES);
  const nul = rest.indexOf(0);
  const textBytes = nul < 0 ? rest : rest.subarray(0, nul);
  if (textBytes.byteLength === 0) return msg;
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(textBytes));
  } catch {
    return decodeError(Errno.EINVAL, "json-invalid");
  }
  const caps = parseCapabilities(parsed);
  if (isDecodeError(caps)) return caps;
  msg.capabilities = caps;
  return msg;
}

/** Applies the spec defaults to what a peer announced. */
export function withDefaults(caps: VersionCapabilities | undefined): EffectiveCapabilities {
  const eff: EffectiveCapabilities = {
    maxMsgFds: caps?.maxMsgFds ?? CapabilityDefault.MAX_MSG_FDS,
    maxDataXferSize: caps?.maxDataXferSize ?? CapabilityDefault.MAX_DATA_XFER_SIZE,
    maxDmaMaps: caps?.maxDmaMaps ?? CapabilityDefault.MAX_DMA_MAPS,
    pgsizes: caps?.pgsizes ?? CapabilityDefault.PGSIZES,
    writeMultiple: caps?.writeMultiple ?? false,
  };
  if (caps?.migration !== undefined) eff.migration = { ...caps.migration };
  return eff;
}

export type VersionNegotiation =
  | {
      kind: "accept";
      /** What the server sends back. */
      reply: VersionMessage;
      /** The client's capabilities with defaults applied. */
      peer: EffectiveCapabilities;
      /** True if both sides enabled REGION_WRITE_MULTI. */
      writeMultiple: boolean;
    }
  | { kind: "reject-major"; proposedMajor: number };

/**
 * Server side of the negotiation. `ours.capabilities` is what we offer; `write_multiple` is kept only
 * if the client proposed it too, and `twin_socket` is never offered.
 */
export function negotiateVersion(
  proposal: VersionMessage,
  ours: { major: number; minor: number; capabilities: VersionCapabilities },
): VersionNegotiation {
  if (proposal.major !== ours.major) return { kind: "reject-major", proposedMajor: proposal.major };
  const writeMultiple =
    ours.capabilities.writeMultiple === true && proposal.capabilities?.writeMultiple === true;
  const { twinSocket: _omit, writeMultiple: _wm, ...rest } = ours.capabilities;
  const caps: VersionCapabilities = { ...rest };
  if (writeMultiple) caps.writeMultiple = true;
  return {
    kind: "accept",
    reply: { major: proposal.major, minor: Math.min(proposal.minor, ours.minor), capabilities: caps },
    peer: withDefaults(proposal.capabilities),
    writeMultiple,
  };
}
