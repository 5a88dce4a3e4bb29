/**
 * PRP (Physical Region Page) entries for a physically contiguous guest buffer, host side
 * (NVMe Base 2.1 §4.3.1 "Physical Region Page Entry and List"), with memory page size 4 KiB (CC.MPS 0).
 *
 *   PRP1 = the buffer's first byte (may carry a page offset; bits 1:0 must be 0).
 *   Transfer within the first page            → PRP2 = 0 (unused).
 *   Transfer ends within the second page      → PRP2 = address of the second page.
 *   Longer                                    → PRP2 = PRP List pointer. The list holds the addresses of
 *     pages 2..n, 8 bytes each, 512 per list page; when more follow, the last entry of a full list page
 *     points to the next list page instead (so a non-final list page carries 511 data entries).
 *
 * List pages are pre-allocated by the caller (per command slot), contiguous, page-aligned; entries are
 * written through `GuestMemory` so the CPU dirty log sees them.
 */
import { GUEST_PAGE_BYTES, type GuestMemory } from "./guest-memory.ts";

const PAGE = GUEST_PAGE_BYTES;
/** PRP entries per list page. */
export const PRP_ENTRIES_PER_PAGE = PAGE / 8;

/** Output of `buildPrps`, reused by the caller so the hot path allocates nothing. */
export interface PrpPair {
  prp1: number;
  prp2: number;
}

/** Number of memory pages a transfer of `lengthBytes` at `gpa` touches. */
export function prpPagesTouched(gpa: number, lengthBytes: number): number {
  if (lengthBytes <= 0) return 0;
  const offset = gpa % PAGE;
  return Math.ceil((offset + lengthBytes) / PAGE);
}

/** PRP list pages needed for a transfer touching `pages` memory pages (0 when PRP1/PRP2 suffice). */
export function prpListPagesFor(pages: number): number {
  const entries = pages - 1;
  if (pages <= 2) return 0;
  return entries <= PRP_ENTRIES_PER_PAGE ? 1 : Math.ceil((entries - 1) / (PRP_ENTRIES_PER_PAGE - 1));
}

/** PRP list pages to reserve per slot so any transfer up to `maxTransferBytes` (at any offset) fits. */
export function prpListPagesForMaxTransfer(maxTransferBytes: number): number {
  // A dword-aligned buffer with a page offset can touch one page more than an aligned one.
  return prpListPagesFor(Math.ceil(maxTransferBytes / PAGE) + 1);
}

/**
 * Fills `out` with PRP1/PRP2 for `lengthBytes` (> 0) at `bufferGpa` (dword-aligned), writing a PRP
 * list into the `listPages` pages at `listGpa` when one is needed. Returns false (writing nothing)
 * when the list would need more than `listPages` pages or the buffer is not dword-aligned.
 */
export function buildPrps(
  mem: GuestMemory,
  bufferGpa: number,
  lengthBytes: number,
  listGpa: number,
  listPages: number,
  out: PrpPair,
): boolean {
  if ((bufferGpa & 3) !== 0 || lengthBytes <= 0) return false;
  const offset = bufferGpa % PAGE;
  const pages = Math.ceil((offset + lengthBytes) / PAGE);
  out.prp1 = bufferGpa;
  if (pages === 1) {
    out.prp2 = 0;
    return true;
  }
  const firstPageGpa = bufferGpa - offset;
  if (pages === 2) {
    out.prp2 = firstPageGpa + PAGE;
    return true;
  }
  if (prpListPagesFor(pages) > listPages) return false;
  const v = mem.dataView;
  let entryGpa = listGpa;
  let slotInPage = 0;
  let written = 0;
  for (let k = 1; k < pages; k++) {
    const remaining = pages - k;
    if (slotInPage === PRP_ENTRIES_PER_PAGE - 1 && remaining > 1) {
      // Last slot of a list page and more than one entry left: chain to the next list page.
      const nextList = entryGpa + 8;
      writeEntry(v, entryGpa, nextList);
      entryGpa = nextList;
      slotInPage = 0;
      written++;
    }
    writeEntry(v, entryGpa, firstPageGpa + k * PAGE);
    entryGpa += 8;
    slotInPage++;
    written++;
  }
  mem.markDirty(listGpa, written * 8);
  out.prp2 = listGpa;
  return true;
}

function writeEntry(v: DataView, at: number, value: number): void {
  v.setUint32(at, value >>> 0, true);
  v.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true);
}
