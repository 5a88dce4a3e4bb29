/**
 * Commands Supported and Effects log page (LID 05h, 4096 bytes), NVMe Base 2.1 Figures "Commands
 * Supported and Effects Log Page" and "Commands Supported and Effects Data Structure": ACS0..ACS255
 * (admin, u32 each, indexed by opcode) @0, IOCS0..IOCS255 (I/O) @1024, reserved to the end.
 */
import { bit, bits, dataView, fit, flag, pack, place, target } from "./codec.ts";

export const COMMANDS_SUPPORTED_EFFECTS_BYTES = 4096;
export const COMMAND_EFFECTS_ENTRIES = 256;
export const IOCS_OFFSET = 1024;

export interface CommandsSupportedEffects {
  /** Admin Command Supported entries, by opcode (decode returns 256; encode writes those given). */
  acs: number[];
  /** I/O Command Supported entries, by opcode. */
  iocs: number[];
}

/** Entry bits. */
export const CSE_CSUPP = 1 << 0; // Command Supported
export const CSE_LBCC = 1 << 1; // Logical Block Content Change
export const CSE_NCC = 1 << 2; // Namespace Capability Change
export const CSE_NIC = 1 << 3; // Namespace Inventory Change
export const CSE_CCC = 1 << 4; // Controller Capability Change

/** Command Submission and Execution (bits 18:16). */
export const CommandSubmissionExecution = {
  NoRestriction: 0,
  /** Submit only when no other command is outstanding to the same namespace. */
  SingleNamespace: 1,
  /** Submit only when no other command is outstanding to any namespace. */
  AnyNamespace: 2,
} as const;

/** One entry, decoded. */
export interface CommandEffects {
  csupp: boolean;
  lbcc: boolean;
  ncc: boolean;
  nic: boolean;
  ccc: boolean;
  /** Command Submission and Execution Relaxations (bits 15:14). */
  cser: number;
  /** Command Submission and Execution (bits 18:16). */
  cse: number;
  /** UUID Selection Supported (bit 19). */
  uss: boolean;
  /** Command Scope (bits 31:20). */
  csp: number;
}

export function encodeCommandEffects(e: Partial<CommandEffects>): number {
  return pack(
    flag(e.csupp ?? false, 0),
    flag(e.lbcc ?? false, 1),
    flag(e.ncc ?? false, 2),
    flag(e.nic ?? false, 3),
    flag(e.ccc ?? false, 4),
    place(e.cser ?? 0, 14, 2),
    place(e.cse ?? 0, 16, 3),
    flag(e.uss ?? false, 19),
    place(e.csp ?? 0, 20, 12),
  );
}

export function decodeCommandEffects(dw: number): CommandEffects {
  return {
    csupp: bit(dw, 0),
    lbcc: bit(dw, 1),
    ncc: bit(dw, 2),
    nic: bit(dw, 3),
    ccc: bit(dw, 4),
    cser: bits(dw, 14, 2),
    cse: bits(dw, 16, 3),
    uss: bit(dw, 19),
    csp: bits(dw, 20, 12),
  };
}

export function encodeCommandsSupportedEffects(v: CommandsSupportedEffects, dst?: Uint8Array): Uint8Array {
  if (v.acs.length > COMMAND_EFFECTS_ENTRIES || v.iocs.length > COMMAND_EFFECTS_ENTRIES) {
    throw new RangeError(`at most ${COMMAND_EFFECTS_ENTRIES} entries per command set`);
  }
  const out = target(dst, COMMANDS_SUPPORTED_EFFECTS_BYTES);
  const view = dataView(out);
  v.acs.forEach((e, op) => {
    view.setUint32(4 * op, e >>> 0, true);
  });
  v.iocs.forEach((e, op) => {
    view.setUint32(IOCS_OFFSET + 4 * op, e >>> 0, true);
  });
  return out;
}

export function decodeCommandsSupportedEffects(src: Uint8Array): CommandsSupportedEffects {
  const view = dataView(fit(src, COMMANDS_SUPPORTED_EFFECTS_BYTES));
  const read = (base: number) =>
    Array.from({ length: COMMAND_EFFECTS_ENTRIES }, (_, op) => view.getUint32(base + 4 * op, true));
  return { acs: read(0), iocs: read(IOCS_OFFSET) };
}
