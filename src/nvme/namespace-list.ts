/**
 * Namespace List (4096 bytes: up to 1024 NSIDs, u32 each, in increasing order, zero-terminated), the
 * data of Identify CNS 02h (Active Namespace ID list) and of other NSID lists.
 */
import { dataView, fit, target } from "./codec.ts";

export const NAMESPACE_LIST_BYTES = 4096;
export const NAMESPACE_LIST_MAX = 1024;

/** Writes `nsids` as given (the caller orders them); the rest is zero. Throws beyond 1024 entries. */
export function encodeNamespaceList(nsids: readonly number[], dst?: Uint8Array): Uint8Array {
  if (nsids.length > NAMESPACE_LIST_MAX) {
    throw new RangeError(`a namespace list holds ${NAMESPACE_LIST_MAX} NSIDs, got ${nsids.length}`);
  }
  const out = target(dst, NAMESPACE_LIST_BYTES);
  const v = dataView(out);
  nsids.forEach((nsid, i) => {
    v.setUint32(4 * i, nsid >>> 0, true);
  });
  return out;
}

/** The NSIDs before the first zero entry. */
export function decodeNamespaceList(src: Uint8Array): number[] {
  const v = dataView(fit(src, NAMESPACE_LIST_BYTES));
  const out: number[] = [];
  for (let i = 0; i < NAMESPACE_LIST_MAX; i++) {
    const nsid = v.getUint32(4 * i, true);
    if (nsid === 0) break;
    out.push(nsid);
  }
  return out;
}

/**
 * The list Identify CNS 02h returns: active NSIDs greater than `afterNsid` (CDW1.NSID of the command),
 * in increasing order, at most 1024.
 */
export function activeNamespaceIdList(activeNsids: Iterable<number>, afterNsid: number): number[] {
  return [...activeNsids]
    .filter((n) => n > afterNsid && n !== 0)
    .sort((a, b) => a - b)
    .slice(0, NAMESPACE_LIST_MAX);
}
