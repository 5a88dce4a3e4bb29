/**
 * MSI-X table and Pending Bit Array emulation (PCI Local Bus 3.0 §6.8.2.6–6.8.2.9), living in a BAR.
 *
 * Table: N entries of 16 bytes — Message Address (low dword, bits 1:0 RO 0), Message Upper Address,
 * Message Data, Vector Control (bit 0 Mask, other bits RO 0). Entries reset masked with address and
 * data 0. PBA: one bit per vector in little-endian QWORDs, read-only to software.
 *
 * A vector is deliverable when MSI-X is enabled, the function is not masked and the vector's Mask bit is
 * clear. `signal(v)` delivers a deliverable vector through `deliver(v, address, data)`; otherwise it sets
 * the pending bit. Whenever a vector becomes deliverable (entry unmasked, Function Mask cleared, MSI-X
 * enabled) with its pending bit set, the pending bit is cleared and the message delivered.
 *
 * Accesses may have any size at any offset inside a region (software uses aligned DWORD / QWORD);
 * they apply byte by byte. A malformed access is reported as an event and fails; nothing throws.
 */

import { MSIX_MAX_VECTORS, type MsixControl } from "./cap-msix.ts";
import { isUnsigned, PciError, type RestoreResult } from "./errors.ts";
import { ignoreEvents, type PciEventSink } from "./events.ts";

export const PCI_MSIX_ENTRY_SIZE = 16;
export const PCI_MSIX_ENTRY_LOWER_ADDR = 0x0;
export const PCI_MSIX_ENTRY_UPPER_ADDR = 0x4;
export const PCI_MSIX_ENTRY_DATA = 0x8;
export const PCI_MSIX_ENTRY_VECTOR_CTRL = 0xc;
export const PCI_MSIX_ENTRY_CTRL_MASKBIT = 0x1;

/** Writable bits of each of the 16 bytes of an entry. */
const ENTRY_WRITE_MASK = [
  0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00,
] as const;

export interface MsixTableOptions {
  /** Number of vectors, 1..2048. */
  vectors: number;
  /** Sends one MSI-X message. `address` is the 64-bit Message Address, `data` the Message Data. */
  deliver: (vector: number, address: bigint, data: number) => void;
  /** Receives `pci.msix.*` events. Default: ignored. */
  onEvent?: PciEventSink;
}

export type MsixSignalResult = "delivered" | "pending" | "bad-vector";

/** One table entry in snapshots. */
export interface MsixEntrySnapshot {
  vector: number;
  messageAddressLo: number;
  messageAddressHi: number;
  messageData: number;
  vectorControl: number;
  pending: boolean;
}

/** The whole table + PBA as named, JSON-able data. */
export interface MsixTableSnapshot {
  format: "nvmig.pci.msix-table";
  version: 1;
  vectors: number;
  entries: MsixEntrySnapshot[];
}

/**
 * The compact form (version 2): only the entries not in their reset state (masked, address and data 0,
 * not pending), as named columns — listed entry i is `vector[i]`, `messageAddressLo[i]`, … Entries not
 * listed are in their reset state. About 20 bytes of JSON per programmed vector instead of about 115.
 */
export interface MsixTableCompactSnapshot {
  format: "nvmig.pci.msix-table";
  version: 2;
  vectors: number;
  entries: MsixEntryColumns;
}

/** Table entries by column (all arrays the same length). */
export interface MsixEntryColumns {
  vector: number[];
  messageAddressLo: number[];
  messageAddressHi: number[];
  messageData: number[];
  vectorControl: number[];
  /** 1 when the vector's pending bit is set, else 0. */
  pending: number[];
}

export const MSIX_SNAPSHOT_FORMAT = "nvmig.pci.msix-table";
/** Version of `snapshot()`; `compactSnapshot()` writes `MSIX_COMPACT_SNAPSHOT_VERSION`. Both are restorable. */
export const MSIX_SNAPSHOT_VERSION = 1;
export const MSIX_COMPACT_SNAPSHOT_VERSION = 2;

const COLUMNS = [
  "vector",
  "messageAddressLo",
  "messageAddressHi",
  "messageData",
  "vectorControl",
  "pending",
] as const satisfies readonly (keyof MsixEntryColumns)[];

export class MsixTable {
  readonly vectors: number;
  /** Size of the table region: 16 × vectors. */
  readonly tableSizeBytes: number;
  /** Size of the PBA region: 8 × ceil(vectors / 64). */
  readonly pbaSizeBytes: number;
  private readonly table: Uint8Array;
  private readonly view: DataView;
  private readonly pba: Uint8Array;
  private readonly deliver: MsixTableOptions["deliver"];
  private readonly onEvent: PciEventSink;
  private enable = false;
  private functionMask = false;

  /** Throws `PciError("invalid-descriptor")` if `vectors` is not 1..2048 (our bug). */
  constructor(options: MsixTableOptions) {
    if (!Number.isInteger(options.vectors) || options.vectors < 1 || options.vectors > MSIX_MAX_VECTORS) {
      throw new PciError("invalid-descriptor", `MSI-X vector count ${options.vectors} is not 1..2048`);
    }
    this.vectors = options.vectors;
    this.tableSizeBytes = PCI_MSIX_ENTRY_SIZE * options.vectors;
    this.pbaSizeBytes = 8 * Math.ceil(options.vectors / 64);
    this.table = new Uint8Array(this.tableSizeBytes);
    this.view = new DataView(this.table.buffer);
    this.pba = new Uint8Array(this.pbaSizeBytes);
    this.deliver = options.deliver;
    this.onEvent = options.onEvent ?? ignoreEvents;
    this.reset();
  }

  /** Reset state: every entry masked with address/data 0, no pending bit, MSI-X disabled. */
  reset(): void {
    this.table.fill(0);
    this.pba.fill(0);
    for (let v = 0; v < this.vectors; v++) {
      this.view.setUint32(
        v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL,
        PCI_MSIX_ENTRY_CTRL_MASKBIT,
        true,
      );
    }
    this.enable = false;
    this.functionMask = false;
  }

  /** MSI-X Enable / Function Mask as in the capability's Message Control. */
  get control(): MsixControl {
    return { enable: this.enable, functionMask: this.functionMask };
  }

  /**
   * Mirrors Message Control. With `deliverPending` (default true), vectors that became deliverable
   * deliver their pending messages. (Restore passes false: restoring never sends messages.)
   */
  setControl(control: MsixControl, options: { deliverPending?: boolean } = {}): void {
    this.enable = control.enable;
    this.functionMask = control.functionMask;
    if (options.deliverPending ?? true) this.flushPending(0, this.vectors);
  }

  /** Raises `vector`: delivers it, or sets its pending bit if it cannot be delivered now. */
  signal(vector: number): MsixSignalResult {
    if (!this.validVector(vector)) {
      this.onEvent({ name: "pci.msix.bad-vector", vector });
      return "bad-vector";
    }
    if (!this.deliverable(vector)) {
      this.pba[vector >> 3]! |= 1 << (vector & 7);
      return "pending";
    }
    this.send(vector);
    return "delivered";
  }

  /** The vector's pending bit (false for a bad vector). */
  pending(vector: number): boolean {
    return this.validVector(vector) && (this.pba[vector >> 3]! & (1 << (vector & 7))) !== 0;
  }

  /** The vector's own Mask bit (Vector Control bit 0); true for a bad vector. */
  masked(vector: number): boolean {
    if (!this.validVector(vector)) return true;
    return (this.vectorControl(vector) & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0;
  }

  /** True if a signal of `vector` would be delivered now. */
  deliverable(vector: number): boolean {
    return this.validVector(vector) && this.enable && !this.functionMask && !this.masked(vector);
  }

  /** The vector's Message Address and Data (undefined for a bad vector). */
  entry(vector: number): { address: bigint; data: number; masked: boolean } | undefined {
    if (!this.validVector(vector)) return undefined;
    const at = vector * PCI_MSIX_ENTRY_SIZE;
    return {
      address: this.messageAddress(vector),
      data: this.view.getUint32(at + PCI_MSIX_ENTRY_DATA, true),
      masked: this.masked(vector),
    };
  }

  /**
   * Sets or clears the vector's Mask bit from the device side (e.g. vfio-user SET_IRQS mask/unmask);
   * unmasking delivers a pending message. Returns false for a bad vector.
   */
  setVectorMasked(vector: number, masked: boolean): boolean {
    if (!this.validVector(vector)) return false;
    const at = vector * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL;
    this.view.setUint32(at, masked ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0, true);
    if (!masked) this.flushPending(vector, vector + 1);
    return true;
  }

  /** Reads `length` bytes of the table at `offset`. Undefined (and an event) if malformed. */
  readTable(offset: number, length: number): Uint8Array | undefined {
    if (!this.validRange(offset, length, this.tableSizeBytes)) {
      this.onEvent({ name: "pci.msix.bad-access", region: "table", offset, sizeBytes: length, write: false });
      return undefined;
    }
    return this.table.slice(offset, offset + length);
  }

  /** Writes `data` into the table at `offset` (RO bits kept). False (and an event) if malformed. */
  writeTable(offset: number, data: Uint8Array): boolean {
    if (!this.validRange(offset, data.length, this.tableSizeBytes)) {
      this.onEvent({
        name: "pci.msix.bad-access",
        region: "table",
        offset,
        sizeBytes: data.length,
        write: true,
      });
      return false;
    }
    for (let i = 0; i < data.length; i++) {
      const at = offset + i;
      const wm = ENTRY_WRITE_MASK[at % PCI_MSIX_ENTRY_SIZE]!;
      this.table[at] = (this.table[at]! & ~wm) | (data[i]! & wm);
    }
    const first = Math.floor(offset / PCI_MSIX_ENTRY_SIZE);
    const last = Math.floor((offset + data.length - 1) / PCI_MSIX_ENTRY_SIZE);
    this.flushPending(first, last + 1);
    return true;
  }

  /** Reads `length` bytes of the PBA at `offset`. Undefined (and an event) if malformed. */
  readPba(offset: number, length: number): Uint8Array | undefined {
    if (!this.validRange(offset, length, this.pbaSizeBytes)) {
      this.onEvent({ name: "pci.msix.bad-access", region: "pba", offset, sizeBytes: length, write: false });
      return undefined;
    }
    return this.pba.slice(offset, offset + length);
  }

  /** PBA writes are accepted and ignored (the PBA is read-only). False (and an event) if malformed. */
  writePba(offset: number, data: Uint8Array): boolean {
    if (!this.validRange(offset, data.length, this.pbaSizeBytes)) {
      this.onEvent({
        name: "pci.msix.bad-access",
        region: "pba",
        offset,
        sizeBytes: data.length,
        write: true,
      });
      return false;
    }
    return true;
  }

  /** The table and PBA as named data. */
  snapshot(): MsixTableSnapshot {
    const entries: MsixEntrySnapshot[] = [];
    for (let v = 0; v < this.vectors; v++) {
      const at = v * PCI_MSIX_ENTRY_SIZE;
      entries.push({
        vector: v,
        messageAddressLo: this.view.getUint32(at + PCI_MSIX_ENTRY_LOWER_ADDR, true),
        messageAddressHi: this.view.getUint32(at + PCI_MSIX_ENTRY_UPPER_ADDR, true),
        messageData: this.view.getUint32(at + PCI_MSIX_ENTRY_DATA, true),
        vectorControl: this.vectorControl(v),
        pending: this.pending(v),
      });
    }
    return { format: MSIX_SNAPSHOT_FORMAT, version: MSIX_SNAPSHOT_VERSION, vectors: this.vectors, entries };
  }

  /** The table and PBA in the compact form: only entries not in their reset state, by column. */
  compactSnapshot(): MsixTableCompactSnapshot {
    const c: MsixEntryColumns = {
      vector: [],
      messageAddressLo: [],
      messageAddressHi: [],
      messageData: [],
      vectorControl: [],
      pending: [],
    };
    const v = this.view;
    for (let vector = 0; vector < this.vectors; vector++) {
      const at = vector * PCI_MSIX_ENTRY_SIZE;
      const lo = v.getUint32(at + PCI_MSIX_ENTRY_LOWER_ADDR, true);
      const hi = v.getUint32(at + PCI_MSIX_ENTRY_UPPER_ADDR, true);
      const data = v.getUint32(at + PCI_MSIX_ENTRY_DATA, true);
      const ctrl = this.vectorControl(vector);
      const pending = this.pending(vector) ? 1 : 0;
      if (lo === 0 && hi === 0 && data === 0 && ctrl === PCI_MSIX_ENTRY_CTRL_MASKBIT && pending === 0)
        continue;
      c.vector.push(vector);
      c.messageAddressLo.push(lo);
      c.messageAddressHi.push(hi);
      c.messageData.push(data);
      c.vectorControl.push(ctrl);
      c.pending.push(pending);
    }
    return {
      format: MSIX_SNAPSHOT_FORMAT,
      version: MSIX_COMPACT_SNAPSHOT_VERSION,
      vectors: this.vectors,
      entries: c,
    };
  }

  /** Returns a reason `snapshot` (either form) cannot be restored into this table, or undefined if it can. */
  check(snapshot: unknown): PciError | undefined {
    if (typeof snapshot !== "object" || snapshot === null)
      return new PciError("state-format", "MSI-X state is not an object");
    const s = snapshot as Partial<MsixTableSnapshot>;
    if (s.format !== MSIX_SNAPSHOT_FORMAT)
      return new PciError("state-format", `MSI-X state format is ${String(s.format)}`);
    if ((s.version as number) === MSIX_COMPACT_SNAPSHOT_VERSION)
      return this.checkCompact(snapshot as Partial<MsixTableCompactSnapshot>);
    if (s.version !== MSIX_SNAPSHOT_VERSION)
      return new PciError("state-version", `MSI-X state version ${String(s.version)}`);
    if (s.vectors !== this.vectors || !Array.isArray(s.entries) || s.entries.length !== this.vectors) {
      return new PciError(
        "state-vector-count",
        `MSI-X state has ${String(s.vectors)} vectors, table has ${this.vectors}`,
      );
    }
    const seen = new Set<number>();
    for (const e of s.entries as unknown[]) {
      if (typeof e !== "object" || e === null)
        return new PciError("state-bad-value", "MSI-X entry is not an object");
      const entry = e as Partial<MsixEntrySnapshot>;
      const v = entry.vector;
      if (!isUnsigned(v, 16) || v >= this.vectors || seen.has(v)) {
        return new PciError("state-bad-value", `MSI-X entry vector ${String(v)} is unknown or repeated`);
      }
      seen.add(v);
      const ok =
        isUnsigned(entry.messageAddressLo, 32) &&
        (entry.messageAddressLo & 0x3) === 0 &&
        isUnsigned(entry.messageAddressHi, 32) &&
        isUnsigned(entry.messageData, 32) &&
        isUnsigned(entry.vectorControl, 32) &&
        (entry.vectorControl & ~PCI_MSIX_ENTRY_CTRL_MASKBIT) === 0 &&
        typeof entry.pending === "boolean";
      if (!ok) return new PciError("state-bad-value", `MSI-X entry ${v} has a bad field`);
    }
    return undefined;
  }

  private checkCompact(s: Partial<MsixTableCompactSnapshot>): PciError | undefined {
    const c = s.entries as Partial<Record<keyof MsixEntryColumns, unknown>> | undefined;
    if (s.vectors !== this.vectors || typeof c !== "object" || c === null) {
      return new PciError(
        "state-vector-count",
        `MSI-X state has ${String(s.vectors)} vectors, table has ${this.vectors}`,
      );
    }
    const n = Array.isArray(c.vector) ? c.vector.length : -1;
    for (const name of COLUMNS) {
      const col = c[name];
      if (!Array.isArray(col) || col.length !== n || n > this.vectors)
        return new PciError(
          "state-bad-value",
          `MSI-X entry column ${name} is missing or of the wrong length`,
        );
    }
    const col = c as MsixEntryColumns;
    let last = -1;
    for (let i = 0; i < n; i++) {
      const v = col.vector[i];
      // Ascending vectors: each listed once.
      if (!isUnsigned(v, 16) || v >= this.vectors || v <= last)
        return new PciError("state-bad-value", `MSI-X entry vector ${String(v)} is unknown or out of order`);
      last = v;
      const lo = col.messageAddressLo[i];
      const ctrl = col.vectorControl[i];
      const pending = col.pending[i];
      const ok =
        isUnsigned(lo, 32) &&
        (lo & 0x3) === 0 &&
        isUnsigned(col.messageAddressHi[i], 32) &&
        isUnsigned(col.messageData[i], 32) &&
        isUnsigned(ctrl, 32) &&
        (ctrl & ~PCI_MSIX_ENTRY_CTRL_MASKBIT) === 0 &&
        (pending === 0 || pending === 1);
      if (!ok) return new PciError("state-bad-value", `MSI-X entry ${v} has a bad field`);
    }
    return undefined;
  }

  /**
   * Replaces table and PBA with `snapshot`, either form (validated first; nothing changes on refusal).
   * Sends nothing.
   */
  restore(snapshot: unknown): RestoreResult {
    const error = this.check(snapshot);
    if (error !== undefined) return { ok: false, error };
    if ((snapshot as { version: number }).version === MSIX_COMPACT_SNAPSHOT_VERSION) {
      const { enable, functionMask } = this;
      this.reset();
      this.enable = enable;
      this.functionMask = functionMask;
      const c = (snapshot as MsixTableCompactSnapshot).entries;
      for (let i = 0; i < c.vector.length; i++) {
        const vector = c.vector[i]!;
        const at = vector * PCI_MSIX_ENTRY_SIZE;
        this.view.setUint32(at + PCI_MSIX_ENTRY_LOWER_ADDR, c.messageAddressLo[i]!, true);
        this.view.setUint32(at + PCI_MSIX_ENTRY_UPPER_ADDR, c.messageAddressHi[i]!, true);
        this.view.setUint32(at + PCI_MSIX_ENTRY_DATA, c.messageData[i]!, true);
        this.view.setUint32(at + PCI_MSIX_ENTRY_VECTOR_CTRL, c.vectorControl[i]!, true);
        if (c.pending[i] === 1) this.pba[vector >> 3]! |= 1 << (vector & 7);
      }
      return { ok: true, ignoredFields: [] };
    }
    for (const e of (snapshot as MsixTableSnapshot).entries) {
      const at = e.vector * PCI_MSIX_ENTRY_SIZE;
      this.view.setUint32(at + PCI_MSIX_ENTRY_LOWER_ADDR, e.messageAddressLo, true);
      this.view.setUint32(at + PCI_MSIX_ENTRY_UPPER_ADDR, e.messageAddressHi, true);
      this.view.setUint32(at + PCI_MSIX_ENTRY_DATA, e.messageData, true);
      this.view.setUint32(at + PCI_MSIX_ENTRY_VECTOR_CTRL, e.vectorControl, true);
      const bit = 1 << (e.vector & 7);
      if (e.pending) this.pba[e.vector >> 3]! |= bit;
      else this.pba[e.vector >> 3]! &= ~bit;
    }
    return { ok: true, ignoredFields: [] };
  }

  private validVector(vector: number): boolean {
    return Number.isInteger(vector) && vector >= 0 && vector < this.vectors;
  }

  private validRange(offset: number, length: number, regionBytes: number): boolean {
    return (
      Number.isInteger(offset) &&
      Number.isInteger(length) &&
      offset >= 0 &&
      length >= 1 &&
      offset + length <= regionBytes
    );
  }

  private vectorControl(vector: number): number {
    return this.view.getUint32(vector * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL, true);
  }

  private messageAddress(vector: number): bigint {
    const at = vector * PCI_MSIX_ENTRY_SIZE;
    const lo = this.view.getUint32(at + PCI_MSIX_ENTRY_LOWER_ADDR, true);
    const hi = this.view.getUint32(at + PCI_MSIX_ENTRY_UPPER_ADDR, true);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** Delivers and clears the pending bit of every deliverable vector in [from, to). */
  private flushPending(from: number, to: number): void {
    if (!this.enable || this.functionMask) return;
    for (let v = from; v < to; v++) {
      if (this.pending(v) && !this.masked(v)) {
        this.pba[v >> 3]! &= ~(1 << (v & 7));
        this.send(v);
      }
    }
  }

  private send(vector: number): void {
    const at = vector * PCI_MSIX_ENTRY_SIZE;
    this.deliver(vector, this.messageAddress(vector), this.view.getUint32(at + PCI_MSIX_ENTRY_DATA, true));
  }
}
