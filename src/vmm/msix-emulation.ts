/**
 * The VMM's own MSI-X table for a function attached over vfio-user, as QEMU's vfio-pci keeps one: the
 * guest programs the table and PBA here (they never reach the device), and the device signals each
 * vector on an eventfd the VMM handed it with SET_IRQS. A vector fires the guest's interrupt handler
 * when MSI-X is enabled, the function is not masked and the vector's entry is unmasked; otherwise its
 * Pending Bit is set and the message is delivered when the mask clears (PCI Local Bus 3.0 §6.8.3.4).
 *
 *   guest                    MsixEmulation                         device (server)
 *     | config: MSI-X Enable ─► enabled = 1
 *     | table[v].ctrl mask 0 ─► eventfd(v) created, watched ────────► SET_IRQS MSIX start=v [fd]
 *     |                         ◄───────────────────────────────────── eventfd write (vector v)
 *     | ◄── handler(v)           (or PBA bit v when masked; delivered on unmask)
 *
 * Registration with the device goes through the `register` callback (the port turns it into
 * SET_IRQS); MSI-X Enable 1 → 0 calls `unregisterAll`. Eventfds are created lazily (first unmask
 * while enabled) and kept until `close()`, so a re-enable or a move to another device re-registers
 * the same fds.
 *
 * Not API beyond `VfioUserPort`.
 */
import { close, eventfd, eventfdRead, unwatch, type WatchHandle, watch } from "../native/addon.ts";
import { assignTyped, base64ToTyped, typedToBase64 } from "./state-codec.ts";

/** MSI-X capability registers (PCI Local Bus 3.0 §6.8.2). */
export const MSIX_CAP_MESSAGE_CONTROL = 2;
export const MSIX_CAP_TABLE = 4;
export const MSIX_CAP_PBA = 8;
export const MSIX_CONTROL_ENABLE = 1 << 15;
export const MSIX_CONTROL_FUNCTION_MASK = 1 << 14;
const MSIX_CONTROL_TABLE_SIZE_MASK = 0x7ff;
const MSIX_BIR_MASK = 0x7;
/** Table entry: Message Address (+0, +4), Message Data (+8), Vector Control (+12). */
const ENTRY_BYTES = 16;
const VECTOR_CONTROL = 12;
const VECTOR_CONTROL_MASK = 1;

/** Where the function's MSI-X capability, table and PBA are. */
export interface MsixLayout {
  /** Config space offset of the capability. */
  capOffset: number;
  /** Table Size (entries, not 0's based). */
  tableSize: number;
  tableBar: number;
  tableOffset: number;
  pbaBar: number;
  pbaOffset: number;
  /** Message Control as read at attach. */
  control: number;
}

/** Decodes the capability's three registers. */
export function decodeMsixCapability(
  capOffset: number,
  control: number,
  table: number,
  pba: number,
): MsixLayout {
  return {
    capOffset,
    tableSize: (control & MSIX_CONTROL_TABLE_SIZE_MASK) + 1,
    tableBar: table & MSIX_BIR_MASK,
    tableOffset: (table & ~MSIX_BIR_MASK) >>> 0,
    pbaBar: pba & MSIX_BIR_MASK,
    pbaOffset: (pba & ~MSIX_BIR_MASK) >>> 0,
    control: control & 0xffff,
  };
}

export interface MsixEmulationHooks {
  /** Hands eventfds for vectors `start …` to the device (SET_IRQS). Errors are the caller's to log. */
  register(start: number, fds: number[]): void;
  /** Takes every MSI-X eventfd back from the device (SET_IRQS DATA_NONE, count 0). */
  unregisterAll(): void;
  /** Delivers one MSI-X message to the guest. Never called inside a guest access. */
  deliver(vector: number): void;
  /** Vectors the device supports (IRQ info count); caps the table. */
  deviceVectors: number;
}

/** `MsixEmulation.saveState()`: the table (u32 words) and PBA (one byte per vector) as base64. */
export interface MsixEmulationState {
  tableSize: number;
  table: string;
  pending: string;
  control: number;
}

export class MsixEmulation {
  readonly layout: MsixLayout;
  /** Vectors usable: min(Table Size, the device's IRQ count). */
  readonly vectors: number;
  private readonly table: Uint32Array;
  private readonly pending: Uint8Array;
  private readonly fds: Int32Array;
  private readonly registered: Uint8Array;
  private readonly watches: (WatchHandle | undefined)[];
  private control: number;
  private held = false;
  private readonly heldVectors = new Set<number>();
  private closed = false;
  /** Eventfd signals seen (one per readable wake-up, whatever the counter said). */
  signals = 0;
  /** Messages delivered to the guest. */
  delivered = 0;

  constructor(
    layout: MsixLayout,
    private readonly hooks: MsixEmulationHooks,
  ) {
    this.layout = layout;
    this.vectors = Math.max(0, Math.min(layout.tableSize, hooks.deviceVectors));
    this.table = new Uint32Array(layout.tableSize * (ENTRY_BYTES / 4));
    for (let v = 0; v < layout.tableSize; v++) this.table[v * 4 + 3] = VECTOR_CONTROL_MASK;
    this.pending = new Uint8Array(layout.tableSize);
    this.fds = new Int32Array(this.vectors).fill(-1);
    this.registered = new Uint8Array(this.vectors);
    this.watches = new Array<WatchHandle | undefined>(this.vectors).fill(undefined);
    this.control = layout.control & ~(MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK);
  }

  get enabled(): boolean {
    return (this.control & MSIX_CONTROL_ENABLE) !== 0;
  }

  /** Vectors whose eventfd the device holds now. */
  get registeredCount(): number {
    let n = 0;
    for (let v = 0; v < this.vectors; v++) n += this.registered[v]!;
    return n;
  }

  get functionMasked(): boolean {
    return (this.control & MSIX_CONTROL_FUNCTION_MASK) !== 0;
  }

  // ---------------------------------------------------------------- config space

  /** True when a config write of `sizeBytes` at `offset` touches Message Control. */
  touchesControl(offset: number, sizeBytes: number): boolean {
    const at = this.layout.capOffset + MSIX_CAP_MESSAGE_CONTROL;
    return offset < at + 2 && at < offset + sizeBytes;
  }

  /** Applies the Message Control bytes of a guest config write (only Enable and Function Mask are RW). */
  configWrite(offset: number, sizeBytes: number, value: number): void {
    const at = this.layout.capOffset + MSIX_CAP_MESSAGE_CONTROL;
    let next = this.control;
    for (let i = 0; i < sizeBytes; i++) {
      const byteAt = offset + i;
      if (byteAt < at || byteAt >= at + 2) continue;
      const byte = (value >>> (8 * i)) & 0xff;
      const shift = 8 * (byteAt - at);
      next = (next & ~(0xff << shift)) | (byte << shift);
    }
    const writable = MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK;
    next = (this.control & ~writable) | (next & writable);
    const was = this.control;
    this.control = next;
    const wasEnabled = (was & MSIX_CONTROL_ENABLE) !== 0;
    if (!wasEnabled && this.enabled) this.registerUnmasked();
    if (wasEnabled && !this.enabled) {
      this.registered.fill(0);
      this.pending.fill(0);
      this.hooks.unregisterAll();
    }
    if (this.enabled && !this.functionMasked) this.schedulePendingDelivery();
  }

  // ---------------------------------------------------------------- table and PBA

  /** True when BAR `bar` bytes [offset, offset+sizeBytes) lie in the table. */
  inTable(bar: number, offset: number, sizeBytes: number): boolean {
    const l = this.layout;
    return (
      bar === l.tableBar &&
      offset >= l.tableOffset &&
      offset + sizeBytes <= l.tableOffset + this.table.byteLength
    );
  }

  /** True when BAR `bar` bytes [offset, offset+sizeBytes) lie in the PBA. */
  inPba(bar: number, offset: number, sizeBytes: number): boolean {
    const l = this.layout;
    const pbaBytes = Math.ceil(l.tableSize / 64) * 8;
    return bar === l.pbaBar && offset >= l.pbaOffset && offset + sizeBytes <= l.pbaOffset + pbaBytes;
  }

  /** A dword-aligned 32-bit table read (unaligned reads read the containing dword). */
  tableRead32(offset: number): number {
    return this.table[(offset - this.layout.tableOffset) >>> 2]! >>> 0;
  }

  /** A 32-bit table write; unmasking a vector registers it and delivers a pending message. */
  tableWrite32(offset: number, value: number): void {
    const word = (offset - this.layout.tableOffset) >>> 2;
    const vector = word >>> 2;
    const isControl = (word & 3) === VECTOR_CONTROL / 4;
    const before = this.table[word]!;
    this.table[word] = isControl
      ? (before & ~VECTOR_CONTROL_MASK) | (value & VECTOR_CONTROL_MASK)
      : value >>> 0;
    if (!isControl || this.isMasked(vector)) return;
    if (this.enabled && vector < this.vectors && this.registered[vector] === 0) this.register([vector]);
    if (this.pending[vector] === 1) this.schedulePendingDelivery();
  }

  /** A 32-bit PBA read: one bit per vector, set while a message waits for its mask to clear. */
  pbaRead32(offset: number): number {
    const firstVector = ((offset - this.layout.pbaOffset) >>> 2) * 32;
    let word = 0;
    for (let i = 0; i < 32; i++) {
      if (this.pending[firstVector + i] === 1) word |= 1 << i;
    }
    return word >>> 0;
  }

  private isMasked(vector: number): boolean {
    return (this.table[vector * 4 + 3]! & VECTOR_CONTROL_MASK) !== 0;
  }

  // ---------------------------------------------------------------- eventfds

  private fdFor(vector: number): number {
    let fd = this.fds[vector]!;
    if (fd >= 0) return fd;
    fd = eventfd();
    this.fds[vector] = fd;
    this.watches[vector] = watch(fd, "r", () => this.onSignal(vector));
    return fd;
  }

  private registerUnmasked(): void {
    const vs: number[] = [];
    for (let v = 0; v < this.vectors; v++) if (!this.isMasked(v) && this.registered[v] === 0) vs.push(v);
    this.register(vs);
  }

  /** Registers `vectors` (ascending) in contiguous runs. */
  private register(vectors: number[]): void {
    if (this.closed) return;
    let i = 0;
    while (i < vectors.length) {
      let n = 1;
      while (i + n < vectors.length && vectors[i + n] === vectors[i]! + n) n++;
      const run = vectors.slice(i, i + n);
      const fds = run.map((v) => this.fdFor(v));
      for (const v of run) this.registered[v] = 1;
      this.hooks.register(run[0]!, fds);
      i += n;
    }
  }

  /** Registers again, with a new device, every vector registered now (after a retarget). */
  reregister(): void {
    const vs: number[] = [];
    for (let v = 0; v < this.vectors; v++) if (this.registered[v] === 1) vs.push(v);
    this.registered.fill(0);
    this.register(vs);
  }

  private onSignal(vector: number): void {
    const fd = this.fds[vector]!;
    if (fd < 0 || eventfdRead(fd) === -1) return;
    this.signals++;
    this.raise(vector);
  }

  private raise(vector: number): void {
    if (!this.enabled) return;
    if (this.functionMasked || this.isMasked(vector)) {
      this.pending[vector] = 1;
      return;
    }
    if (this.held) {
      this.heldVectors.add(vector);
      return;
    }
    this.delivered++;
    this.hooks.deliver(vector);
  }

  private pendingScheduled = false;

  private schedulePendingDelivery(): void {
    if (this.pendingScheduled) return;
    this.pendingScheduled = true;
    queueMicrotask(() => {
      this.pendingScheduled = false;
      if (!this.enabled || this.functionMasked) return;
      for (let v = 0; v < this.layout.tableSize; v++) {
        if (this.pending[v] === 1 && !this.isMasked(v)) {
          this.pending[v] = 0;
          this.raise(v);
        }
      }
    });
  }

  // ---------------------------------------------------------------- migration

  /** The guest-visible MSI-X state (table, PBA, Message Control) for the destination VMM. */
  saveState(): MsixEmulationState {
    const pending = new Uint8Array(this.pending);
    for (const v of this.heldVectors) pending[v] = 1;
    return {
      tableSize: this.layout.tableSize,
      table: typedToBase64(this.table),
      pending: typedToBase64(pending),
      control: this.control,
    };
  }

  /**
   * Takes over a saved state (same table size) and registers, with the device, an eventfd for each
   * vector the guest left enabled and unmasked. Pending vectors are delivered once the guest runs.
   * @throws RangeError for a state of another table size.
   */
  loadState(s: MsixEmulationState): void {
    if (s.tableSize !== this.layout.tableSize)
      throw new RangeError(`MSI-X table size ${s.tableSize}, this function has ${this.layout.tableSize}`);
    const n = this.layout.tableSize;
    assignTyped(this.table, base64ToTyped(Uint32Array, s.table, n * 4, "MSI-X table"), "MSI-X table");
    assignTyped(this.pending, base64ToTyped(Uint8Array, s.pending, n, "MSI-X PBA"), "MSI-X PBA");
    const writable = MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK;
    this.control = (this.control & ~writable) | (s.control & writable);
    if (this.enabled) {
      this.registerUnmasked();
      if (!this.functionMasked) this.schedulePendingDelivery();
    }
  }

  // ---------------------------------------------------------------- pause

  /** Holds deliveries (stopped vCPUs); signals still drain the eventfds. */
  hold(): void {
    this.held = true;
  }

  /** Delivers held messages (in vector order), then lets deliveries through again. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    if (this.heldVectors.size === 0) return;
    const vs = [...this.heldVectors].sort((a, b) => a - b);
    this.heldVectors.clear();
    queueMicrotask(() => {
      for (const v of vs) this.raise(v);
    });
  }

  /** Stops watching and closes every eventfd. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (let v = 0; v < this.vectors; v++) {
      const w = this.watches[v];
      if (w !== undefined) unwatch(w);
      this.watches[v] = undefined;
      const fd = this.fds[v]!;
      if (fd >= 0) close(fd);
      this.fds[v] = -1;
    }
    this.registered.fill(0);
  }
}
