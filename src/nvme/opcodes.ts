/**
 * NVMe command opcodes (NVMe Base Specification 2.1, Figure "Opcodes for Admin Commands";
 * NVM Command Set Specification 1.1, Figure "Opcodes for NVM Commands").
 *
 * Bits 1:0 of an opcode give the data direction: 00b none, 01b host to controller,
 * 10b controller to host, 11b bidirectional. Names are the spec's, in PascalCase.
 */
export const AdminOpcode = {
  DeleteIoSubmissionQueue: 0x00,
  CreateIoSubmissionQueue: 0x01,
  GetLogPage: 0x02,
  DeleteIoCompletionQueue: 0x04,
  CreateIoCompletionQueue: 0x05,
  Identify: 0x06,
  Abort: 0x08,
  SetFeatures: 0x09,
  GetFeatures: 0x0a,
  AsynchronousEventRequest: 0x0c,
  NamespaceManagement: 0x0d,
  FirmwareCommit: 0x10,
  FirmwareImageDownload: 0x11,
  NamespaceAttachment: 0x15,
  KeepAlive: 0x18,
  VirtualizationManagement: 0x1c,
  /** TP4159 Track Send. */
  TrackSend: 0x3d,
  /** TP4159 Track Receive. */
  TrackReceive: 0x3e,
  /** TP4159 Migration Send (Suspend / Resume / Set Controller State). */
  MigrationSend: 0x41,
  /** TP4159 Migration Receive (Get Controller State). */
  MigrationReceive: 0x42,
  /** TP4159 Controller Data Queue (create / delete). */
  ControllerDataQueue: 0x45,
  DoorbellBufferConfig: 0x7c,
  FormatNvm: 0x80,
  /** Intel live-migration vendor profile (Dec 2022 RFC): query state size, VF index in CDW10[15:0]. */
  IntelQueryDataSize: 0xc4,
  /** Intel profile: suspend the VF controller. */
  IntelSuspend: 0xc8,
  /** Intel profile: resume the VF controller. */
  IntelResume: 0xcc,
  /** Intel profile: save the VF state to host memory (controller to host). */
  IntelSaveData: 0xd2,
  /** Intel profile: load the VF state from host memory; size in bytes in CDW11. */
  IntelLoadData: 0xd5,
} as const;
export type AdminOpcode = (typeof AdminOpcode)[keyof typeof AdminOpcode];

export const NvmOpcode = {
  Flush: 0x00,
  Write: 0x01,
  Read: 0x02,
  WriteUncorrectable: 0x04,
  Compare: 0x05,
  WriteZeroes: 0x08,
  DatasetManagement: 0x09,
  Verify: 0x0c,
} as const;
export type NvmOpcode = (typeof NvmOpcode)[keyof typeof NvmOpcode];

/** Data transfer direction encoded in opcode bits 1:0. */
export const DataDirection = { None: 0, HostToController: 1, ControllerToHost: 2, Bidirectional: 3 } as const;
export type DataDirection = (typeof DataDirection)[keyof typeof DataDirection];

export function opcodeDirection(opcode: number): DataDirection {
  return (opcode & 0x3) as DataDirection;
}

const adminNames = new Map<number, string>(Object.entries(AdminOpcode).map(([k, v]) => [v, k]));
const nvmNames = new Map<number, string>(Object.entries(NvmOpcode).map(([k, v]) => [v, k]));

/** Spec name of an opcode, for logs; `unknown(0xNN)` when not defined here. */
export function opcodeName(admin: boolean, opcode: number): string {
  return (admin ? adminNames : nvmNames).get(opcode) ?? `unknown(0x${opcode.toString(16).padStart(2, "0")})`;
}
