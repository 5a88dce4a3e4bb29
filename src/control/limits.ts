/**
 * Size limits of the control plane. grpc-js refuses messages above 4 MiB by default (both sides), so
 * every bulk payload travels in chunks of at most MAX_CHUNK_BYTES; the rest of a message is a few
 * dozen bytes.
 */

/** Largest `data`/`bitmap` payload in one message: 1 MiB. */
export const MAX_CHUNK_BYTES = 1 << 20;

/** Chunk size used when the caller asks for 0 ("default"): 1 MiB. */
export const DEFAULT_CHUNK_BYTES = MAX_CHUNK_BYTES;

/** Largest dirty bitmap ReportDirtyPages returns: 1 MiB = 8 Mi pages (32 GiB at 4 KiB pages). */
export const MAX_DIRTY_BITMAP_BYTES = 1 << 20;

/** Smallest dirty-tracking page size: 4 KiB. */
export const MIN_DIRTY_PAGE_BYTES = 4096n;

/** Default bound on a controller state accepted by SetControllerState: 64 MiB. */
export const DEFAULT_MAX_CONTROLLER_STATE_BYTES = 64 << 20;

/** Largest valid CNTLID (FFF0h..FFFFh are reserved). */
export const MAX_CNTLID = 0xffef;

/** Resolves a requested chunk size: 0 → default; otherwise 1..MAX_CHUNK_BYTES or `undefined` (invalid). */
export function resolveChunkBytes(requested: number): number | undefined {
  if (requested === 0) return DEFAULT_CHUNK_BYTES;
  if (!Number.isInteger(requested) || requested < 1 || requested > MAX_CHUNK_BYTES) return undefined;
  return requested;
}
