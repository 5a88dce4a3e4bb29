/**
 * Changed Namespace List log page (LID 04h, 4096 bytes): up to 1024 NSIDs (u32) whose Identify
 * Namespace data changed since the page was last read, zero-terminated. When more than 1024 changed,
 * the first entry is FFFFFFFFh and the rest is zero.
 */
import { dataView, fit, target } from "./codec.ts";

export const CHANGED_NAMESPACE_LIST_BYTES = 4096;
export const CHANGED_NAMESPACE_LIST_MAX = 1024;
/** The sole entry when more than 1024 namespaces changed. */
export const CHANGED_NAMESPACE_LIST_OVERFLOW = 0xffffffff;

/** Writes `nsids`; more than 1024 are written as the overflow marker. */
export function encodeChangedNamespaceList(nsids: readonly number[], dst?: Uint8Array): Uint8Array {
  const out = target(dst, CHANGED_NAMESPACE_LIST_BYTES);
  const v = dataView(out);
  if (nsids.length > CHANGED_NAMESPACE_LIST_MAX) {
    v.setUint32(0, CHANGED_NAMESPACE_LIST_OVERFLOW, true);
    return out;
  }
  nsids.forEach((nsid, i) => {
    v.setUint32(4 * i, nsid >>> 0, true);
  });
  return out;
}

/** The NSIDs before the first zero; `[CHANGED_NAMESPACE_LIST_OVERFLOW]` when the page overflowed. */
export function decodeChangedNamespaceList(src: Uint8Array): number[] {
  const v = dataView(fit(src, CHANGED_NAMESPACE_LIST_BYTES));
  const out: number[] = [];
  for (let i = 0; i < CHANGED_NAMESPACE_LIST_MAX; i++) {
    const nsid = v.getUint32(4 * i, true);
    if (nsid === 0) break;
    out.push(nsid);
    if (nsid === CHANGED_NAMESPACE_LIST_OVERFLOW) break;
  }
  return out;
}
