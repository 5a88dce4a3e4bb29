/**
 * One PCI function (an NVMe PF or VF as the bus sees it): config space with the Type 0 header, BARs,
 * Power Management, MSI-X, PCI Express v2, and — on a PF — SR-IOV and ARI; plus the MSI-X table/PBA
 * that live in a BAR. It knows nothing about NVMe: the owner of the BARs (the controller) handles its
 * registers and asks this object to raise interrupts, to route MSI-X table/PBA accesses, and is told
 * about FLR, SR-IOV and Command changes through hooks.
 *
 * Config layout: 0x40 PM (8 B) → 0x48 MSI-X (12 B) → 0x54 PCIe (60 B); 0x100 SR-IOV (64 B) → 0x140 ARI.
 *
 * Function Level Reset (Initiate FLR, or `functionLevelReset()` e.g. for vfio-user DEVICE_RESET):
 * config returns to reset values except sticky bits (Max_Payload_Size, Link Control, Link Control 2),
 * the MSI-X table resets (all masked, nothing pending), then `onFunctionLevelReset` runs, then
 * `onSriovChange` / `onCommandChange` if those states changed.
 */
import { BarSet, type BarSpec } from "./bars.ts";
import { AriCapability } from "./cap-ari.ts";
import { MsixCapability, type MsixControl } from "./cap-msix.ts";
import { PcieCapability } from "./cap-pcie.ts";
import { PowerManagementCapability } from "./cap-power-management.ts";
import { SriovCapability, type SriovState } from "./cap-sriov.ts";
import { buildCapabilityList, type ExtendedCapability } from "./capabilities.ts";
import { ConfigSpace } from "./config-space.ts";
import { PciError, type RestoreResult } from "./errors.ts";
import type { PciEvent, PciEventSink } from "./events.ts";
import { checkFunctionDescriptor, type PciFunctionDescriptor } from "./function-descriptor.ts";
import { MsixTable, type MsixTableCompactSnapshot, type MsixTableSnapshot } from "./msix.ts";
import {
  COMMAND_WRITE_MASK_PHYSICAL,
  COMMAND_WRITE_MASK_VIRTUAL,
  defineType0Header,
  PCI_BASE_ADDRESS_0,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  type Type0Header,
} from "./type0-header.ts";

export type { SriovState } from "./cap-sriov.ts";
export type { PciFunctionDescriptor } from "./function-descriptor.ts";

/** The Command register bits the device acts on. */
export interface CommandState {
  ioSpace: boolean;
  memorySpace: boolean;
  busMaster: boolean;
  intxDisable: boolean;
}

/** Callbacks into the function's owner. Each is optional and may be replaced at any time. */
export interface PciFunctionHooks {
  /** After a Function Level Reset of the PCI state (the owner resets its device state). */
  onFunctionLevelReset?: () => void;
  /** After an access changed VF Enable, NumVFs, VF MSE or ARI Capable Hierarchy (PF only). */
  onSriovChange?: (state: SriovState) => void;
  /** After Command changed (software write or FLR). */
  onCommandChange?: (state: CommandState) => void;
  /** Sends one MSI-X message (vector, 64-bit Message Address, Message Data). */
  onMsixMessage?: (vector: number, address: bigint, data: number) => void;
  /** Named events for guest mistakes and transitions. */
  onEvent?: PciEventSink;
}

/** Where the MSI-X table or PBA lives. */
export interface MsixRegion {
  kind: "table" | "pba";
  bar: number;
  offset: number;
  sizeBytes: number;
}

export type PciSignalResult = "delivered" | "pending" | "bad-vector" | "dropped-bus-master-off";

/** What must match for a snapshot to be restored into a function. */
export interface PciIdentity {
  vendorId: number;
  deviceId: number;
  subsystemVendorId: number;
  subsystemId: number;
  classCode: number;
  revision: number;
  isVirtualFunction: boolean;
}

/** The software-visible PCI state of a function, as named, JSON-able data. */
export interface PciFunctionSnapshot {
  format: "nvmig.pci.function";
  version: 1;
  identity: PciIdentity;
  /** Every config field with RW or RW1C bits, by name (e.g. `"header.command"`, `"sriov.numVfs"`). */
  config: Record<string, number>;
  /** The MSI-X table and PBA: every entry (version 1), or only programmed ones (compact, version 2). */
  msix: MsixTableSnapshot | MsixTableCompactSnapshot;
}

export const PCI_FUNCTION_SNAPSHOT_FORMAT = "nvmig.pci.function";
export const PCI_FUNCTION_SNAPSHOT_VERSION = 1;

export class PciFunction {
  readonly descriptor: Readonly<PciFunctionDescriptor>;
  readonly config: ConfigSpace;
  readonly msix: MsixTable;
  readonly hooks: PciFunctionHooks;
  /** Offset of each capability by name: `pm`, `msix`, `pcie`, `sriov`, `ari`. */
  readonly capabilityOffsets: ReadonlyMap<string, number>;
  private readonly header: Type0Header;
  private readonly bars: BarSet | undefined;
  private readonly pm: PowerManagementCapability;
  private readonly msixCap: MsixCapability;
  private readonly sriov: SriovCapability | undefined;
  private lastCommand: number;

  /** Throws `PciError("invalid-descriptor")` if the descriptor is inconsistent (our bug). */
  constructor(descriptor: PciFunctionDescriptor, hooks: PciFunctionHooks = {}) {
    const problem = checkFunctionDescriptor(descriptor);
    if (problem !== undefined) throw new PciError("invalid-descriptor", problem);
    this.descriptor = descriptor;
    this.hooks = hooks;
    const d = descriptor;
    const onEvent = (event: PciEvent): void => this.hooks.onEvent?.(event);
    const physicalView = !d.isVirtualFunction || (d.presentAsPhysical ?? true);

    this.config = new ConfigSpace({ onEvent });
    this.msix = new MsixTable({
      vectors: d.msix.vectors,
      deliver: (vector, address, data) => this.hooks.onMsixMessage?.(vector, address, data),
      onEvent,
    });
    this.pm = new PowerManagementCapability(onEvent);
    this.msixCap = new MsixCapability({
      ...d.msix,
      onControlChange: (control) => this.msix.setControl(control),
    });
    const pcie = new PcieCapability({
      linkSpeed: d.link?.speed,
      linkWidth: d.link?.width,
      onInitiateFlr: () => this.functionLevelReset(),
    });
    const extended: ExtendedCapability[] = [];
    if (d.sriov !== undefined) {
      const s = d.sriov;
      this.sriov = new SriovCapability({
        ...s,
        vfBars: [{ index: 0, sizeBytes: s.vfBar0SizeBytes, prefetchable: s.vfBar0Prefetchable ?? false }],
        onChange: (state) => this.hooks.onSriovChange?.(state),
        onEvent,
      });
      extended.push(this.sriov);
    }
    const ari = d.ari ?? (d.sriov !== undefined ? { nextFunctionNumber: 0 } : false);
    if (ari) extended.push(new AriCapability(ari.nextFunctionNumber));
    const layout = buildCapabilityList(this.config, [this.pm, this.msixCap, pcie], extended);
    this.capabilityOffsets = layout.offsets;

    this.header = defineType0Header(this.config, {
      vendorId: physicalView ? d.vendorId : 0xffff,
      deviceId: physicalView ? d.deviceId : 0xffff,
      revisionId: d.revision,
      classCode: d.classCode,
      subsystemVendorId: d.subsystemVendorId,
      subsystemId: d.subsystemId,
      capabilitiesPointer: layout.capabilitiesPointer,
      interruptPin: d.interruptPin ?? (d.isVirtualFunction ? 0 : 1),
      commandWriteMask: physicalView ? COMMAND_WRITE_MASK_PHYSICAL : COMMAND_WRITE_MASK_VIRTUAL,
      interruptLineWritable: physicalView,
      onCommandWrite: () => this.reportCommandIfChanged(),
    });
    this.bars = physicalView
      ? new BarSet(this.config, d.bars, { baseOffset: PCI_BASE_ADDRESS_0, namePrefix: "bar" })
      : undefined;
    this.lastCommand = this.header.command.get();
  }

  // ---- config space ----

  /** Config read of 1, 2 or 4 bytes at any offset; undefined if malformed. */
  configRead(offset: number, sizeBytes: number): number | undefined {
    return this.config.read(offset, sizeBytes);
  }

  /** Config write of 1, 2 or 4 bytes at any offset; false if malformed (nothing changed). */
  configWrite(offset: number, sizeBytes: number, value: number): boolean {
    return this.config.write(offset, sizeBytes, value);
  }

  /** Config read of any length (e.g. the vfio-user client's initial full read); undefined if malformed. */
  configReadBytes(offset: number, length: number): Uint8Array | undefined {
    return this.config.readBytes(offset, length);
  }

  /** Config write of any length with per-byte semantics; false if malformed. */
  configWriteBytes(offset: number, data: Uint8Array): boolean {
    return this.config.writeBytes(offset, data);
  }

  // ---- state queries ----

  /** Base address of the 64-bit BAR at slot `index` (0, 2, 4); undefined if not implemented or not visible. */
  barAddress(index: number): bigint | undefined {
    return this.bars?.barAddress(index);
  }

  /** The BARs this function decodes (for a VF: its share of the PF's VF BARs). */
  get barSpecs(): readonly BarSpec[] {
    return this.descriptor.bars;
  }

  get command(): CommandState {
    const c = this.header.command.get();
    return {
      ioSpace: (c & PCI_COMMAND_IO) !== 0,
      memorySpace: (c & PCI_COMMAND_MEMORY) !== 0,
      busMaster: (c & PCI_COMMAND_MASTER) !== 0,
      intxDisable: (c & PCI_COMMAND_INTX_DISABLE) !== 0,
    };
  }

  get busMasterEnabled(): boolean {
    return (this.header.command.get() & PCI_COMMAND_MASTER) !== 0;
  }

  get memorySpaceEnabled(): boolean {
    return (this.header.command.get() & PCI_COMMAND_MEMORY) !== 0;
  }

  /** PMCSR PowerState: 0 (D0) or 3 (D3hot). */
  get powerState(): number {
    return this.pm.powerState;
  }

  /** MSI-X Enable / Function Mask. */
  get msixControl(): MsixControl {
    return this.msixCap.control;
  }

  /** SR-IOV state (undefined without SR-IOV). */
  sriovState(): SriovState | undefined {
    return this.sriov?.state();
  }

  /** Base address of VF BAR `index` as programmed in the SR-IOV capability (VF n's BAR = base + (n-1) × size). */
  vfBarAddress(index: number): bigint | undefined {
    return this.sriov?.vfBars.barAddress(index);
  }

  /** Per-VF size of VF BAR `index` now in force (≥ System Page Size). */
  vfBarSizeBytes(index: number): number | undefined {
    return this.sriov?.vfBars.bar(index)?.sizeBytes;
  }

  // ---- interrupts ----

  /**
   * Raises MSI-X `vector`. With Bus Master Enable clear the function cannot send a message: it is
   * dropped (as on hardware) and reported. Otherwise the MSI-X rules apply (deliver or set pending).
   */
  signal(vector: number): PciSignalResult {
    if (!this.busMasterEnabled) {
      this.hooks.onEvent?.({ name: "pci.msix.dropped-bus-master-off", vector });
      return "dropped-bus-master-off";
    }
    return this.msix.signal(vector);
  }

  /** Where the MSI-X table and PBA live (BAR, offset, size) — regions the BAR owner must route here. */
  msixRegions(): MsixRegion[] {
    const m = this.descriptor.msix;
    return [
      { kind: "table", bar: m.tableBar, offset: m.tableOffset, sizeBytes: this.msix.tableSizeBytes },
      { kind: "pba", bar: m.pbaBar, offset: m.pbaOffset, sizeBytes: this.msix.pbaSizeBytes },
    ];
  }

  /**
   * BAR read of any length. Undefined if the access does not touch the MSI-X table or PBA (the owner
   * handles it). An access that straddles a region edge or is malformed reads zeros and is reported.
   */
  msixReadBytes(bar: number, offset: number, length: number): Uint8Array | undefined {
    const hit = this.locateMsix(bar, offset, length);
    if (hit === undefined) return undefined;
    if (hit === "bad") return new Uint8Array(length);
    const bytes =
      hit.region.kind === "table"
        ? this.msix.readTable(hit.relative, length)
        : this.msix.readPba(hit.relative, length);
    return bytes ?? new Uint8Array(length);
  }

  /** BAR write of any length. False if the access does not touch the MSI-X table or PBA (the owner handles it). */
  msixWriteBytes(bar: number, offset: number, data: Uint8Array): boolean {
    const hit = this.locateMsix(bar, offset, data.length, true);
    if (hit === undefined) return false;
    if (hit === "bad") return true;
    if (hit.region.kind === "table") this.msix.writeTable(hit.relative, data);
    else this.msix.writePba(hit.relative, data);
    return true;
  }

  /** BAR read of 1, 2 or 4 bytes; undefined if not an MSI-X access. */
  msixRead(bar: number, offset: number, sizeBytes: 1 | 2 | 4): number | undefined {
    const bytes = this.msixReadBytes(bar, offset, sizeBytes);
    if (bytes === undefined) return undefined;
    let v = 0;
    for (let i = bytes.length - 1; i >= 0; i--) v = v * 256 + bytes[i]!;
    return v;
  }

  /** BAR read of 8 bytes; undefined if not an MSI-X access. */
  msixRead64(bar: number, offset: number): bigint | undefined {
    const bytes = this.msixReadBytes(bar, offset, 8);
    if (bytes === undefined) return undefined;
    let v = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
    return v;
  }

  /** BAR write of 1, 2 or 4 bytes (value modulo 2^(8·size)); false if not an MSI-X access. */
  msixWrite(bar: number, offset: number, sizeBytes: 1 | 2 | 4, value: number): boolean {
    const data = new Uint8Array(sizeBytes);
    let v = value >>> 0;
    for (let i = 0; i < sizeBytes; i++) {
      data[i] = v & 0xff;
      v >>>= 8;
    }
    return this.msixWriteBytes(bar, offset, data);
  }

  /** BAR write of 8 bytes (value modulo 2^64); false if not an MSI-X access. */
  msixWrite64(bar: number, offset: number, value: bigint): boolean {
    const data = new Uint8Array(8);
    let v = BigInt.asUintN(64, value);
    for (let i = 0; i < 8; i++) {
      data[i] = Number(v & 0xffn);
      v >>= 8n;
    }
    return this.msixWriteBytes(bar, offset, data);
  }

  // ---- reset, snapshot ----

  /** Function Level Reset (what Initiate FLR does). */
  functionLevelReset(): void {
    this.hooks.onEvent?.({ name: "pci.flr" });
    this.config.reset({ keepSticky: true });
    this.sriov?.resync();
    this.msix.reset();
    this.msix.setControl(this.msixCap.control, { deliverPending: false });
    this.hooks.onFunctionLevelReset?.();
    this.sriov?.reportIfChanged();
    this.reportCommandIfChanged();
  }

  /**
   * The software-visible PCI state as named data. `compact` (default false) writes the MSI-X table in
   * its compact form (only entries not in their reset state, by column): what migration state uses.
   */
  snapshot(options: { compact?: boolean } = {}): PciFunctionSnapshot {
    const config: Record<string, number> = {};
    for (const f of this.config.fields()) if (f.isWritable) config[f.name] = f.get();
    return {
      format: PCI_FUNCTION_SNAPSHOT_FORMAT,
      version: PCI_FUNCTION_SNAPSHOT_VERSION,
      identity: this.identity(),
      config,
      msix: options.compact === true ? this.msix.compactSnapshot() : this.msix.snapshot(),
    };
  }

  /**
   * Checks that `snapshot` could be restored into this function — identity, every field, the MSI-X
   * table — without changing anything (what `restore` checks first). The outcome does not depend on
   * the function's current state, only on its descriptor.
   */
  validateSnapshot(snapshot: unknown): RestoreResult {
    return this.check(snapshot);
  }

  /**
   * Restores a snapshot: identity must match, every writable field must be present with an acceptable
   * value, the MSI-X table must have the same vector count. Unknown field names are ignored (and
   * listed). On refusal nothing changes. Runs no hooks and sends no message: the owner reads the
   * restored state (`command`, `sriovState()`, `msixControl`) itself.
   */
  restore(snapshot: unknown): RestoreResult {
    const checked = this.check(snapshot);
    if (!checked.ok) return checked;
    const s = snapshot as PciFunctionSnapshot;
    for (const f of this.config.fields()) {
      if (!f.isWritable) continue;
      const mask = (f.resetWriteMask | f.w1cMask) >>> 0;
      f.set(((f.get() & ~mask) | (s.config[f.name]! & mask)) >>> 0);
    }
    this.sriov?.resync();
    this.sriov?.markReported();
    this.lastCommand = this.header.command.get();
    this.msix.restore(s.msix);
    this.msix.setControl(this.msixCap.control, { deliverPending: false });
    return checked;
  }

  private identity(): PciIdentity {
    const d = this.descriptor;
    return {
      vendorId: d.vendorId,
      deviceId: d.deviceId,
      subsystemVendorId: d.subsystemVendorId,
      subsystemId: d.subsystemId,
      classCode: d.classCode,
      revision: d.revision,
      isVirtualFunction: d.isVirtualFunction,
    };
  }

  private check(snapshot: unknown): RestoreResult {
    const refuse = (error: PciError): RestoreResult => ({ ok: false, error });
    if (typeof snapshot !== "object" || snapshot === null)
      return refuse(new PciError("state-format", "PCI state is not an object"));
    const s = snapshot as Partial<PciFunctionSnapshot>;
    if (s.format !== PCI_FUNCTION_SNAPSHOT_FORMAT)
      return refuse(new PciError("state-format", `PCI state format is ${String(s.format)}`));
    if (s.version !== PCI_FUNCTION_SNAPSHOT_VERSION)
      return refuse(new PciError("state-version", `PCI state version ${String(s.version)}`));
    const mine = this.identity();
    const theirs = (s.identity ?? {}) as Partial<PciIdentity>;
    for (const key of Object.keys(mine) as (keyof PciIdentity)[]) {
      if (theirs[key] !== mine[key]) {
        return refuse(
          new PciError(
            "state-identity",
            `PCI state ${key} is ${String(theirs[key])}, function has ${String(mine[key])}`,
          ),
        );
      }
    }
    if (typeof s.config !== "object" || s.config === null)
      return refuse(new PciError("state-format", "PCI state has no config"));
    const config = s.config as Record<string, unknown>;
    const known = new Set<string>();
    for (const f of this.config.fields()) {
      if (!f.isWritable) continue;
      known.add(f.name);
      if (!(f.name in config))
        return refuse(new PciError("state-missing-field", `PCI state lacks ${f.name}`));
      if (!f.accepts(config[f.name])) {
        return refuse(
          new PciError(
            "state-bad-value",
            `PCI state ${f.name} = ${String(config[f.name])} is not acceptable`,
          ),
        );
      }
    }
    const msixError = this.msix.check(s.msix);
    if (msixError !== undefined) return refuse(msixError);
    return { ok: true, ignoredFields: Object.keys(config).filter((name) => !known.has(name)) };
  }

  private reportCommandIfChanged(): void {
    const now = this.header.command.get();
    if (now === this.lastCommand) return;
    this.lastCommand = now;
    this.hooks.onCommandChange?.(this.command);
  }

  private locateMsix(
    bar: number,
    offset: number,
    length: number,
    write = false,
  ): { region: MsixRegion; relative: number } | "bad" | undefined {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 1)
      return undefined;
    for (const region of this.msixRegions()) {
      if (region.bar !== bar) continue;
      const end = region.offset + region.sizeBytes;
      if (offset >= end || offset + length <= region.offset) continue;
      if (offset < region.offset || offset + length > end) {
        this.hooks.onEvent?.({
          name: "pci.msix.bad-access",
          region: region.kind,
          offset,
          sizeBytes: length,
          write,
        });
        return "bad";
      }
      return { region, relative: offset - region.offset };
    }
    return undefined;
  }
}
