/**
 * Namespace Identification Descriptor list (Identify CNS 03h, 4096 bytes), NVMe Base 2.1 Figure
 * "Namespace Identification Descriptor". Each descriptor: NIDT u8 @0, NIDL u8 @1 (length of NID in
 * bytes), 2 reserved bytes, NID (NIDL bytes) @4; the next descriptor follows immediately. The list
 * ends at a descriptor with NIDT 0 or at the end of the buffer.
 */
import { fit, target } from "./codec.ts";

export const NS_ID_DESCRIPTORS_BYTES = 4096;
export const NS_ID_DESCRIPTOR_HEADER_BYTES = 4;

/** Namespace Identifier Type. */
export const Nidt = { Eui64: 1, Nguid: 2, Uuid: 3, Csi: 4 } as const;
export type Nidt = (typeof Nidt)[keyof typeof Nidt];

/** NIDL each defined type requires. */
export const NIDL_FOR_TYPE: Readonly<Record<Nidt, number>> = { 1: 8, 2: 16, 3: 16, 4: 1 };

/** Command Set Identifier values (NID of an NIDT 4 descriptor). */
export const Csi = { Nvm: 0x00, KeyValue: 0x01, ZonedNamespace: 0x02 } as const;

export interface NsIdDescriptor {
  /** Namespace Identifier Type (Nidt); unknown types are kept as read. */
  nidt: number;
  /** Namespace Identifier; its length is the NIDL. */
  nid: Uint8Array;
}

/**
 * Writes the descriptors in order, then a zero terminator (implicit: the rest is zero). Throws when
 * a descriptor of a defined type has the wrong NID length, a type is 0, or the list does not fit.
 */
export function encodeNsIdDescriptors(list: readonly NsIdDescriptor[], dst?: Uint8Array): Uint8Array {
  const out = target(dst, NS_ID_DESCRIPTORS_BYTES);
  let at = 0;
  for (const d of list) {
    const want = NIDL_FOR_TYPE[d.nidt as Nidt];
    if (d.nidt === 0 || d.nidt > 0xff) throw new RangeError(`invalid NIDT ${d.nidt}`);
    if (want !== undefined && d.nid.byteLength !== want) {
      throw new RangeError(`NIDT ${d.nidt} needs a ${want}-byte NID, got ${d.nid.byteLength}`);
    }
    if (d.nid.byteLength > 0xff) throw new RangeError(`NID of ${d.nid.byteLength} bytes exceeds NIDL`);
    const end = at + NS_ID_DESCRIPTOR_HEADER_BYTES + d.nid.byteLength;
    if (end > NS_ID_DESCRIPTORS_BYTES)
      throw new RangeError("namespace identification descriptors do not fit");
    out[at] = d.nidt;
    out[at + 1] = d.nid.byteLength;
    out.set(d.nid, at + NS_ID_DESCRIPTOR_HEADER_BYTES);
    at = end;
  }
  return out;
}

/**
 * Descriptors up to the terminator. A descriptor whose NID would run past the buffer ends the list
 * (it is dropped); descriptors of unknown type are returned as read.
 */
export function decodeNsIdDescriptors(src: Uint8Array): NsIdDescriptor[] {
  const b = fit(src, NS_ID_DESCRIPTORS_BYTES);
  const out: NsIdDescriptor[] = [];
  let at = 0;
  while (at + NS_ID_DESCRIPTOR_HEADER_BYTES <= b.byteLength) {
    const nidt = b[at]!;
    const nidl = b[at + 1]!;
    if (nidt === 0) break;
    const start = at + NS_ID_DESCRIPTOR_HEADER_BYTES;
    if (start + nidl > b.byteLength) break;
    out.push({ nidt, nid: b.slice(start, start + nidl) });
    at = start + nidl;
  }
  return out;
}
