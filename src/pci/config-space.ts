/**
 * A 4096-byte PCI Express extended configuration space with per-byte write semantics.
 *
 * Every byte has a write mask (bits software may set or clear: RW) and a write-one-to-clear mask
 * (RW1C); all other bits are read-only. Bytes not covered by a defined field are reserved: they read 0
 * and ignore writes. Registers are defined as named fields (1, 2 or 4 bytes, little-endian) with a reset
 * value, masks, sticky bits (kept across a Function Level Reset) and an optional write hook for the few
 * registers whose behaviour is more than a mask (Initiate FLR, NumVFs bounds, PMCSR PowerState…).
 *
 * Accesses of any size at any offset inside 0..4095 are applied byte by byte, as the masks say; each
 * field touched by the access then sees one hook call with the value before and after. Hooks may
 * `defer` side effects (callbacks into the device), which run after the whole access has been applied.
 * A malformed access (out of range, bad size, non-integer value) is reported as an event and returns a
 * failure value; nothing here throws for guest input.
 */
import { isUnsigned, PciError } from "./errors.ts";
import { ignoreEvents, type PciEventSink } from "./events.ts";

/** Size of the PCIe extended configuration space. */
export const CONFIG_SPACE_BYTES = 4096;

/** Widths a register field can have. */
export type FieldWidth = 1 | 2 | 4;

/** What a field's write hook sees for one access. */
export interface FieldWriteContext {
  /** Field value before the access. */
  readonly previous: number;
  /** Field value after the RW / RW1C masks were applied. */
  readonly next: number;
  /** The bits the access wrote into this field (0 where the access did not reach). */
  readonly written: number;
  /** Bit mask of the field bits the access covered (whole bytes). */
  readonly covered: number;
  /** Schedules a side effect to run once the whole access has been applied. */
  defer(action: () => void): void;
}

/** Returns the value the field must hold after the access (usually `ctx.next`). */
export type FieldWriteHook = (ctx: FieldWriteContext) => number;

export interface FieldSpec {
  /** Stable name, used in snapshots (e.g. `"header.command"`, `"sriov.numVfs"`). */
  name: string;
  /** Byte offset in config space. */
  offset: number;
  width: FieldWidth;
  /** Value after reset. Default 0. */
  reset?: number;
  /** RW bits. Default 0 (read-only). */
  writeMask?: number;
  /** RW1C bits. Default 0. */
  w1cMask?: number;
  /** Bits a Function Level Reset keeps (sticky / link registers). Default 0. */
  stickyMask?: number;
  onWrite?: FieldWriteHook;
  /** Whether a restored value is acceptable (beyond fitting the width). Default: any. */
  accepts?: (value: number) => boolean;
}

function widthMask(width: FieldWidth): number {
  return width === 4 ? 0xffffffff : (1 << (8 * width)) - 1;
}

/** One named register in config space. */
export class ConfigField {
  readonly name: string;
  readonly offset: number;
  readonly width: FieldWidth;
  readonly resetValue: number;
  readonly resetWriteMask: number;
  readonly w1cMask: number;
  readonly stickyMask: number;
  readonly onWrite: FieldWriteHook | undefined;
  private readonly acceptsValue: ((value: number) => boolean) | undefined;
  private currentWriteMask: number;

  constructor(
    private readonly space: ConfigSpace,
    spec: FieldSpec,
  ) {
    const all = widthMask(spec.width);
    this.name = spec.name;
    this.offset = spec.offset;
    this.width = spec.width;
    this.resetValue = (spec.reset ?? 0) & all;
    this.resetWriteMask = (spec.writeMask ?? 0) & all;
    this.currentWriteMask = this.resetWriteMask;
    this.w1cMask = (spec.w1cMask ?? 0) & all;
    this.stickyMask = (spec.stickyMask ?? 0) & all;
    this.onWrite = spec.onWrite;
    this.acceptsValue = spec.accepts;
  }

  /** True if `value` fits the width and passes the field's own check (used to validate restores). */
  accepts(value: unknown): value is number {
    return isUnsigned(value, 8 * this.width) && (this.acceptsValue?.(value) ?? true);
  }

  /** The RW bits now in force (may differ from `resetWriteMask`, e.g. a VF BAR after a page-size change). */
  get writeMask(): number {
    return this.currentWriteMask;
  }

  /** Current value (unsigned). */
  get(): number {
    let v = 0;
    for (let i = this.width - 1; i >= 0; i--) v = v * 256 + this.space.bytes[this.offset + i]!;
    return v;
  }

  /** Stores `value` as is, bypassing masks and hooks (device-side update). */
  set(value: number): void {
    let v = value >>> 0;
    for (let i = 0; i < this.width; i++) {
      this.space.bytes[this.offset + i] = v & 0xff;
      v >>>= 8;
    }
  }

  /** Changes the RW bits in force (reset restores `resetWriteMask`). */
  setWriteMask(mask: number): void {
    this.currentWriteMask = (mask >>> 0) & widthMask(this.width);
    let m = this.currentWriteMask;
    for (let i = 0; i < this.width; i++) {
      this.space.writeMask[this.offset + i] = m & 0xff;
      m >>>= 8;
    }
  }

  /** True if any bit of this field is RW or RW1C after reset (i.e. it carries software-visible state). */
  get isWritable(): boolean {
    return (this.resetWriteMask | this.w1cMask) !== 0;
  }
}

export interface ConfigSpaceOptions {
  /** Receives `pci.config.bad-access` events. Default: ignored. */
  onEvent?: PciEventSink;
}

interface TouchedField {
  field: ConfigField;
  previous: number;
  written: number;
  covered: number;
}

export class ConfigSpace {
  /** Current contents. Writable by the device model; software writes go through `write`/`writeBytes`. */
  readonly bytes = new Uint8Array(CONFIG_SPACE_BYTES);
  /** Per byte: the RW bits. */
  readonly writeMask = new Uint8Array(CONFIG_SPACE_BYTES);
  /** Per byte: the RW1C bits. */
  readonly w1cMask = new Uint8Array(CONFIG_SPACE_BYTES);
  private readonly fieldAt = new Int16Array(CONFIG_SPACE_BYTES).fill(-1);
  private readonly fieldList: ConfigField[] = [];
  private readonly byName = new Map<string, ConfigField>();
  private readonly onEvent: PciEventSink;

  constructor(options: ConfigSpaceOptions = {}) {
    this.onEvent = options.onEvent ?? ignoreEvents;
  }

  /**
   * Defines a register field and sets it to its reset value. Throws `PciError("layout")` if the field
   * leaves config space, is not naturally aligned, overlaps another field, or reuses a name (our bug).
   */
  defineField(spec: FieldSpec): ConfigField {
    const { offset, width, name } = spec;
    if (!Number.isInteger(offset) || offset < 0 || offset + width > CONFIG_SPACE_BYTES) {
      throw new PciError("layout", `field ${name} at 0x${offset.toString(16)} leaves config space`);
    }
    if (offset % width !== 0) throw new PciError("layout", `field ${name} is not naturally aligned`);
    if (this.byName.has(name)) throw new PciError("layout", `field name ${name} is defined twice`);
    for (let i = 0; i < width; i++) {
      if (this.fieldAt[offset + i] !== -1) {
        const other = this.fieldList[this.fieldAt[offset + i]!]!;
        throw new PciError("layout", `field ${name} overlaps ${other.name}`);
      }
    }
    const field = new ConfigField(this, spec);
    const index = this.fieldList.length;
    this.fieldList.push(field);
    this.byName.set(name, field);
    let w1c = field.w1cMask;
    for (let i = 0; i < width; i++) {
      this.fieldAt[offset + i] = index;
      this.w1cMask[offset + i] = w1c & 0xff;
      w1c >>>= 8;
    }
    field.setWriteMask(field.resetWriteMask);
    field.set(field.resetValue);
    return field;
  }

  /** The field called `name`, if defined. */
  field(name: string): ConfigField | undefined {
    return this.byName.get(name);
  }

  /** All fields, in definition order. */
  fields(): readonly ConfigField[] {
    return this.fieldList;
  }

  /** Reads 1, 2 or 4 bytes (little-endian, unsigned). Returns `undefined` for a malformed access. */
  read(offset: number, sizeBytes: number): number | undefined {
    if (!this.validAccess(offset, sizeBytes) || (sizeBytes !== 1 && sizeBytes !== 2 && sizeBytes !== 4)) {
      this.onEvent({ name: "pci.config.bad-access", offset, sizeBytes, write: false });
      return undefined;
    }
    let v = 0;
    for (let i = sizeBytes - 1; i >= 0; i--) v = v * 256 + this.bytes[offset + i]!;
    return v;
  }

  /**
   * Writes 1, 2 or 4 bytes. `value` is taken modulo 2^(8·size); it must be an integer in
   * [-2^31, 2^32). Returns false (and changes nothing) for a malformed access.
   */
  write(offset: number, sizeBytes: number, value: number): boolean {
    if (
      !this.validAccess(offset, sizeBytes) ||
      (sizeBytes !== 1 && sizeBytes !== 2 && sizeBytes !== 4) ||
      !Number.isInteger(value) ||
      value < -0x80000000 ||
      value > 0xffffffff
    ) {
      this.onEvent({ name: "pci.config.bad-access", offset, sizeBytes, write: true });
      return false;
    }
    const data = new Uint8Array(sizeBytes);
    let v = value >>> 0;
    for (let i = 0; i < sizeBytes; i++) {
      data[i] = v & 0xff;
      v >>>= 8;
    }
    this.applyWrite(offset, data);
    return true;
  }

  /** Reads `length` bytes (any length ≥ 1 inside config space). Returns `undefined` if malformed. */
  readBytes(offset: number, length: number): Uint8Array | undefined {
    if (!this.validAccess(offset, length)) {
      this.onEvent({ name: "pci.config.bad-access", offset, sizeBytes: length, write: false });
      return undefined;
    }
    return this.bytes.slice(offset, offset + length);
  }

  /** Writes `data` (any length ≥ 1 inside config space) with per-byte semantics. False if malformed. */
  writeBytes(offset: number, data: Uint8Array): boolean {
    if (!this.validAccess(offset, data.length)) {
      this.onEvent({ name: "pci.config.bad-access", offset, sizeBytes: data.length, write: true });
      return false;
    }
    this.applyWrite(offset, data);
    return true;
  }

  /**
   * Returns every field to its reset value and reset write mask. With `keepSticky`, the bits in each
   * field's `stickyMask` keep their current value (Function Level Reset). Runs no hooks.
   */
  reset(options: { keepSticky?: boolean } = {}): void {
    for (const f of this.fieldList) {
      const keep = options.keepSticky ? f.stickyMask : 0;
      f.setWriteMask(f.resetWriteMask);
      f.set(((f.resetValue & ~keep) | (f.get() & keep)) >>> 0);
    }
  }

  private validAccess(offset: number, length: number): boolean {
    return (
      Number.isInteger(offset) &&
      Number.isInteger(length) &&
      offset >= 0 &&
      length >= 1 &&
      offset + length <= CONFIG_SPACE_BYTES
    );
  }

  private applyWrite(offset: number, data: Uint8Array): void {
    const touched: TouchedField[] = [];
    let lastIndex = -1;
    for (let i = 0; i < data.length; i++) {
      const index = this.fieldAt[offset + i]!;
      if (index < 0) continue;
      const field = this.fieldList[index]!;
      if (index !== lastIndex) {
        touched.push({ field, previous: field.get(), written: 0, covered: 0 });
        lastIndex = index;
      }
      const t = touched[touched.length - 1]!;
      const shift = 8 * (offset + i - field.offset);
      t.written = (t.written | (data[i]! << shift)) >>> 0;
      t.covered = (t.covered | (0xff << shift)) >>> 0;
    }
    for (let i = 0; i < data.length; i++) {
      const at = offset + i;
      const v = data[i]!;
      const wm = this.writeMask[at]!;
      const old = this.bytes[at]!;
      this.bytes[at] = ((old & ~wm) | (v & wm)) & ~(v & this.w1cMask[at]!);
    }
    const deferred: (() => void)[] = [];
    const defer = (action: () => void): void => {
      deferred.push(action);
    };
    for (const t of touched) {
      const hook = t.field.onWrite;
      if (hook === undefined) continue;
      const next = t.field.get();
      const final = hook({ previous: t.previous, next, written: t.written, covered: t.covered, defer });
      if (final !== next) t.field.set(final);
    }
    for (const action of deferred) action();
  }
}
