/**
 * The guest's own state — what a real VMM sends as vCPU and VMM device state after RAM — so that a
 * destination VMM process can continue the guest exactly where the source stopped it. Our guest is
 * the NVMe driver, the workload and its verifier running in the VMM process, so "vCPU state" is their
 * saved state; the VMM's MSI-X emulation (as QEMU's vfio-pci keeps it) travels with it.
 *
 *   source VMM                                           destination VMM
 *   pause: port.pause() + driver.freeze()                (RAM arriving over the migration channel)
 *   … device and RAM move …
 *   saveGuestState() ── GUEST_STATE frame ─────────────► parseGuestState()
 *                                                        memory.loadAllocator, port.loadInterruptState,
 *                                                        GuestNvmeDriver.restore, Workload.restore,
 *                                                        driver.resumeAfterMigration, workload.resumeRestored
 *
 * Format: UTF-8 JSON `{"format":"nvmig-guest-state","version":1,"sections":{…}}` with the named
 * sections `memory`, `driver`, `workload`, `interrupts` (typed arrays as base64, bigints and bytes as
 * tagged objects, see `state-codec.ts`). Ages (ms since a command was submitted) replace clock
 * readings, because two processes' `performance.now()` differ.
 *
 * Compatibility rule: a reader accepts only its own `version`; a new field needs a new version (the
 * state is consumed at once by a peer of the same build, never stored).
 */
import type { GuestMemoryAllocatorState } from "./guest-memory.ts";
import type { MsixEmulationState } from "./msix-emulation.ts";
import type { GuestNvmeDriverState } from "./nvme-driver.ts";
import { parseStateJson, stringifyState } from "./state-codec.ts";
import type { WorkloadState } from "./workload.ts";

export const GUEST_STATE_FORMAT = "nvmig-guest-state";
export const GUEST_STATE_VERSION = 1;

export interface GuestStateSections {
  memory: GuestMemoryAllocatorState;
  driver: GuestNvmeDriverState;
  workload: WorkloadState;
  interrupts: MsixEmulationState | null;
}

export interface GuestState {
  format: typeof GUEST_STATE_FORMAT;
  version: typeof GUEST_STATE_VERSION;
  /** Guest RAM size, bytes (the destination's RAM must match). */
  ramBytes: number;
  sections: GuestStateSections;
}

export class GuestStateError extends Error {
  override readonly name = "GuestStateError";
  constructor(
    readonly code: "malformed" | "version" | "mismatch",
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
  }
}

export function encodeGuestState(ramBytes: number, sections: GuestStateSections): Uint8Array {
  const s: GuestState = { format: GUEST_STATE_FORMAT, version: GUEST_STATE_VERSION, ramBytes, sections };
  return new TextEncoder().encode(stringifyState(s));
}

/**
 * Checks the envelope (format, version, RAM size, every section present); the sections' contents are
 * checked by the objects that load them.
 * @throws GuestStateError
 */
export function decodeGuestState(bytes: Uint8Array, ramBytes: number): GuestState {
  let v: unknown;
  try {
    v = parseStateJson(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new GuestStateError("malformed", `guest state is not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (typeof v !== "object" || v === null)
    throw new GuestStateError("malformed", "guest state is not an object");
  const o = v as Record<string, unknown>;
  if (o.format !== GUEST_STATE_FORMAT) throw new GuestStateError("malformed", `format ${String(o.format)}`);
  if (o.version !== GUEST_STATE_VERSION)
    throw new GuestStateError(
      "version",
      `guest state version ${String(o.version)}, this VMM reads ${GUEST_STATE_VERSION}`,
    );
  if (o.ramBytes !== ramBytes)
    throw new GuestStateError("mismatch", `guest RAM ${String(o.ramBytes)} bytes, this VMM has ${ramBytes}`);
  const sections = o.sections as Record<string, unknown> | undefined;
  for (const name of ["memory", "driver", "workload", "interrupts"]) {
    if (sections === undefined || !(name in sections))
      throw new GuestStateError("malformed", `guest state has no ${name} section`);
  }
  return v as GuestState;
}
