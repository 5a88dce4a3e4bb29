/**
 * Identify Controller data structure (CNS 01h, 4096 bytes), NVMe Base Specification 2.1 Figure
 * "Identify Controller Data Structure", with the TP4159 live-migration fields (bytes 570–587) and the
 * vendor-specific area (bytes 3072–4095; the Intel live-migration profile flag is `vs[0] = 1`).
 *
 * Every field defined up to byte 1023 is carried, plus the fabrics fields, the 32 power state
 * descriptors and the vendor-specific area. Strings: SN/MN/FR ASCII space padded, SUBNQN NUL padded.
 * 128-bit capacities are bigint; everything else is a number.
 */
import {
  ascii,
  asciiz,
  bytes,
  dataView,
  type Field,
  fit,
  type Layout,
  readLayout,
  structs,
  target,
  u8,
  u16,
  u24,
  u32,
  u128,
  writeLayout,
} from "./codec.ts";

export const IDENTIFY_CONTROLLER_BYTES = 4096;
export const POWER_STATE_DESCRIPTOR_BYTES = 32;
export const POWER_STATE_DESCRIPTORS = 32;
/** Byte offset of the first power state descriptor (PSD0). */
export const PSD_OFFSET = 2048;
/** Byte offset of the vendor-specific area. */
export const IDENTIFY_CONTROLLER_VS_OFFSET = 3072;
export const IDENTIFY_CONTROLLER_VS_BYTES = 1024;
export const SN_BYTES = 20;
export const MN_BYTES = 40;
export const FR_BYTES = 8;
export const SUBNQN_BYTES = 256;

/** Power State Descriptor (32 bytes), Figure "Power State Descriptor Data Structure". */
export interface PowerStateDescriptor {
  /** Maximum Power, units per `mxps` (0: 0.01 W, 1: 0.0001 W). */
  mp: number;
  /** Max Power Scale (byte 3 bit 0). */
  mxps: number;
  /** Non-Operational State (byte 3 bit 1). */
  nops: number;
  /** Entry Latency, microseconds. */
  enlat: number;
  /** Exit Latency, microseconds. */
  exlat: number;
  /** Relative Read Throughput (bits 4:0). */
  rrt: number;
  rrl: number;
  rwt: number;
  rwl: number;
  /** Idle Power. */
  idlp: number;
  /** Idle Power Scale (byte 18 bits 7:6). */
  ips: number;
  /** Active Power. */
  actp: number;
  /** Active Power Workload (byte 22 bits 2:0). */
  apw: number;
  /** Active Power Scale (byte 22 bits 7:6). */
  aps: number;
}

function bitsOfByte(at: number, lo: number, width: number): Field<number> {
  const mask = (1 << width) - 1;
  return {
    at,
    bytes: 1,
    read: (v, b) => (v.getUint8(b + at) >> lo) & mask,
    // Several sub-fields share the byte: merge into what is already there.
    write: (v, b, x) => v.setUint8(b + at, v.getUint8(b + at) | ((x & mask) << lo)),
  };
}

const psdLayout: Layout<PowerStateDescriptor> = {
  mp: u16(0),
  mxps: bitsOfByte(3, 0, 1),
  nops: bitsOfByte(3, 1, 1),
  enlat: u32(4),
  exlat: u32(8),
  rrt: bitsOfByte(12, 0, 5),
  rrl: bitsOfByte(13, 0, 5),
  rwt: bitsOfByte(14, 0, 5),
  rwl: bitsOfByte(15, 0, 5),
  idlp: u16(16),
  ips: bitsOfByte(18, 6, 2),
  actp: u16(20),
  apw: bitsOfByte(22, 0, 3),
  aps: bitsOfByte(22, 6, 2),
};

export interface IdentifyController {
  /** PCI Vendor ID. */
  vid: number;
  /** PCI Subsystem Vendor ID. */
  ssvid: number;
  /** Serial Number (20 ASCII). */
  sn: string;
  /** Model Number (40 ASCII). */
  mn: string;
  /** Firmware Revision (8 ASCII). */
  fr: string;
  /** Recommended Arbitration Burst (2^n commands). */
  rab: number;
  /** IEEE OUI Identifier (24 bits, little endian). */
  ieee: number;
  /** Controller Multi-Path I/O and Namespace Sharing Capabilities (CMIC_*). */
  cmic: number;
  /** Maximum Data Transfer Size, 2^n × CAP.MPSMIN; 0 = no limit. */
  mdts: number;
  cntlid: number;
  /** Version (same encoding as the VS register). */
  ver: number;
  /** RTD3 Resume Latency, microseconds. */
  rtd3r: number;
  /** RTD3 Entry Latency, microseconds. */
  rtd3e: number;
  /** Optional Asynchronous Events Supported (OAES_*). */
  oaes: number;
  /** Controller Attributes (CTRATT_*). */
  ctratt: number;
  /** Read Recovery Levels Supported. */
  rrls: number;
  /** Boot Partition Capabilities. */
  bpcap: number;
  /** NVM Subsystem Shutdown Latency, microseconds. */
  nssl: number;
  /** Power Loss Signaling Information. */
  plsi: number;
  /** Controller Type (CntrlType). */
  cntrltype: number;
  /** FRU Globally Unique Identifier (16 bytes). */
  fguid: Uint8Array;
  /** Command Retry Delay Times 1–3, 100 ms units. */
  crdt1: number;
  crdt2: number;
  crdt3: number;
  /** Controller Reachability Capabilities. */
  crcap: number;
  /** NVM Subsystem Report (NVMe-MI). */
  nvmsr: number;
  /** VPD Write Cycle Information (NVMe-MI). */
  vwci: number;
  /** Management Endpoint Capabilities (NVMe-MI). */
  mec: number;
  /** Optional Admin Command Support (OACS_*). */
  oacs: number;
  /** Abort Command Limit, 0's based. */
  acl: number;
  /** Asynchronous Event Request Limit, 0's based. */
  aerl: number;
  /** Firmware Updates (FRMW_*). */
  frmw: number;
  /** Log Page Attributes (LPA_*). */
  lpa: number;
  /** Error Log Page Entries, 0's based. */
  elpe: number;
  /** Number of Power States Support, 0's based. */
  npss: number;
  /** Admin Vendor Specific Command Configuration. */
  avscc: number;
  /** Autonomous Power State Transition Attributes. */
  apsta: number;
  /** Warning Composite Temperature Threshold, kelvin. */
  wctemp: number;
  /** Critical Composite Temperature Threshold, kelvin. */
  cctemp: number;
  /** Maximum Time for Firmware Activation, 100 ms units. */
  mtfa: number;
  /** Host Memory Buffer Preferred Size, 4 KiB units. */
  hmpre: number;
  /** Host Memory Buffer Minimum Size, 4 KiB units. */
  hmmin: number;
  /** Total NVM Capacity, bytes. */
  tnvmcap: bigint;
  /** Unallocated NVM Capacity, bytes. */
  unvmcap: bigint;
  /** Replay Protected Memory Block Support. */
  rpmbs: number;
  /** Extended Device Self-test Time, minutes. */
  edstt: number;
  /** Device Self-test Options. */
  dsto: number;
  /** Firmware Update Granularity, 4 KiB units. */
  fwug: number;
  /** Keep Alive Support, 100 ms units. */
  kas: number;
  /** Host Controlled Thermal Management Attributes. */
  hctma: number;
  /** Minimum / Maximum Thermal Management Temperature, kelvin. */
  mntmt: number;
  mxtmt: number;
  /** Sanitize Capabilities. */
  sanicap: number;
  /** Host Memory Buffer Minimum Descriptor Entry Size, 4 KiB units. */
  hmminds: number;
  /** Host Memory Maximum Descriptors Entries. */
  hmmaxd: number;
  /** NVM Set Identifier Maximum. */
  nsetidmax: number;
  /** Endurance Group Identifier Maximum. */
  endgidmax: number;
  /** ANA Transition Time, seconds. */
  anatt: number;
  /** Asymmetric Namespace Access Capabilities. */
  anacap: number;
  /** ANA Group Identifier Maximum. */
  anagrpmax: number;
  /** Number of ANA Group Identifiers. */
  nanagrpid: number;
  /** Persistent Event Log Size, 64 KiB units. */
  pels: number;
  /** Domain Identifier. */
  domainid: number;
  /** Key Per I/O Capabilities. */
  kpioc: number;
  /** Maximum Processing Time for Firmware Activation Without Reset, 100 ms units. */
  mptfawr: number;
  /** Max Endurance Group Capacity, bytes. */
  megcap: bigint;
  /** Temperature Threshold Hysteresis Attributes. */
  tmpthha: number;
  /** Command Quiesce Time, milliseconds. */
  cqt: number;
  /** Submission Queue Entry Size: bits 3:0 required, 7:4 maximum (log2 bytes). */
  sqes: number;
  /** Completion Queue Entry Size: bits 3:0 required, 7:4 maximum (log2 bytes). */
  cqes: number;
  /** Maximum Outstanding Commands (fabrics). */
  maxcmd: number;
  /** Number of Namespaces (largest NSID). */
  nn: number;
  /** Optional NVM Command Support (ONCS_*). */
  oncs: number;
  /** Fused Operation Support (FUSES_*). */
  fuses: number;
  /** Format NVM Attributes (FNA_*). */
  fna: number;
  /** Volatile Write Cache (VWC_*). */
  vwc: number;
  /** Atomic Write Unit Normal, logical blocks, 0's based. */
  awun: number;
  /** Atomic Write Unit Power Fail, logical blocks, 0's based. */
  awupf: number;
  /** I/O Command Set Vendor Specific Command Configuration (formerly NVSCC). */
  nvscc: number;
  /** Namespace Write Protection Capabilities. */
  nwpc: number;
  /** Atomic Compare & Write Unit, logical blocks, 0's based. */
  acwu: number;
  /** Optional Copy Formats Supported. */
  ocfs: number;
  /** SGL Support (SGLS_*). */
  sgls: number;
  /** Maximum Number of Allowed Namespaces. */
  mnan: number;
  /** Maximum Domain Namespace Attachments. */
  maxdna: bigint;
  /** Maximum I/O Controller Namespace Attachments. */
  maxcna: number;
  /** Optimal Aggregated Queue Depth. */
  oaqd: number;
  /** Recommended Host-Initiated Refresh Interval, hours. */
  rhiri: number;
  /** Host-Initiated Refresh Time, seconds. */
  hirt: number;
  /** TP4159: Controller Maximum Memory Range Tracking Descriptors. */
  cmmrtd: number;
  /** TP4159: NVM Subsystem Maximum Memory Range Tracking Descriptors. */
  nmmrtd: number;
  /** TP4159: Minimum Memory Range Tracking Granularity. */
  minmrtg: number;
  /** TP4159: Maximum Memory Range Tracking Granularity. */
  maxmrtg: number;
  /** TP4159: Tracking Attributes (TRATTR_*). */
  trattr: number;
  /** TP4159: Maximum Controller User Data Migration Queues. */
  mcudmq: number;
  /** TP4159: Maximum NVM Subsystem User Data Migration Queues. */
  mnsudmq: number;
  /** TP4159: Maximum CDQ Memory Ranges. */
  mcmr: number;
  /** TP4159: NVM Subsystem Maximum CDQ Memory Ranges. */
  nmcmr: number;
  /** TP4159: Maximum Controller Data Queue PRP Count. */
  mcdqpc: number;
  /** NVM Subsystem NVMe Qualified Name (NUL padded, 256 bytes). */
  subnqn: string;
  /** Fabrics: I/O Queue Command Capsule Supported Size, 16-byte units. */
  ioccsz: number;
  /** Fabrics: I/O Queue Response Capsule Supported Size, 16-byte units. */
  iorcsz: number;
  /** Fabrics: In Capsule Data Offset, 16-byte units. */
  icdoff: number;
  /** Fabrics: Fabrics Controller Attributes. */
  fcatt: number;
  /** Fabrics: Maximum SGL Data Block Descriptors. */
  msdbd: number;
  /** Fabrics: Optional Fabric Commands Support. */
  ofcs: number;
  /** Fabrics: Discovery Controller Type. */
  dctype: number;
  /** Power State Descriptors 0–31 (decode returns all 32; encode writes those given). */
  psd: PowerStateDescriptor[];
  /** Vendor Specific area, 1024 bytes at 3072 (Intel LM profile: vs[0] = 1). */
  vs: Uint8Array;
}

const layout: Layout<IdentifyController> = {
  vid: u16(0),
  ssvid: u16(2),
  sn: ascii(4, SN_BYTES),
  mn: ascii(24, MN_BYTES),
  fr: ascii(64, FR_BYTES),
  rab: u8(72),
  ieee: u24(73),
  cmic: u8(76),
  mdts: u8(77),
  cntlid: u16(78),
  ver: u32(80),
  rtd3r: u32(84),
  rtd3e: u32(88),
  oaes: u32(92),
  ctratt: u32(96),
  rrls: u16(100),
  bpcap: u8(102),
  nssl: u32(104),
  plsi: u8(110),
  cntrltype: u8(111),
  fguid: bytes(112, 16),
  crdt1: u16(128),
  crdt2: u16(130),
  crdt3: u16(132),
  crcap: u8(134),
  nvmsr: u8(253),
  vwci: u8(254),
  mec: u8(255),
  oacs: u16(256),
  acl: u8(258),
  aerl: u8(259),
  frmw: u8(260),
  lpa: u8(261),
  elpe: u8(262),
  npss: u8(263),
  avscc: u8(264),
  apsta: u8(265),
  wctemp: u16(266),
  cctemp: u16(268),
  mtfa: u16(270),
  hmpre: u32(272),
  hmmin: u32(276),
  tnvmcap: u128(280),
  unvmcap: u128(296),
  rpmbs: u32(312),
  edstt: u16(316),
  dsto: u8(318),
  fwug: u8(319),
  kas: u16(320),
  hctma: u16(322),
  mntmt: u16(324),
  mxtmt: u16(326),
  sanicap: u32(328),
  hmminds: u32(332),
  hmmaxd: u16(336),
  nsetidmax: u16(338),
  endgidmax: u16(340),
  anatt: u8(342),
  anacap: u8(343),
  anagrpmax: u32(344),
  nanagrpid: u32(348),
  pels: u32(352),
  domainid: u16(356),
  kpioc: u8(358),
  mptfawr: u16(360),
  megcap: u128(368),
  tmpthha: u8(384),
  cqt: u16(386),
  sqes: u8(512),
  cqes: u8(513),
  maxcmd: u16(514),
  nn: u32(516),
  oncs: u16(520),
  fuses: u16(522),
  fna: u8(524),
  vwc: u8(525),
  awun: u16(526),
  awupf: u16(528),
  nvscc: u8(530),
  nwpc: u8(531),
  acwu: u16(532),
  ocfs: u16(534),
  sgls: u32(536),
  mnan: u32(540),
  maxdna: u128(544),
  maxcna: u32(560),
  oaqd: u32(564),
  rhiri: u8(568),
  hirt: u8(569),
  cmmrtd: u16(570),
  nmmrtd: u16(572),
  minmrtg: u8(574),
  maxmrtg: u8(575),
  trattr: u8(576),
  mcudmq: u16(578),
  mnsudmq: u16(580),
  mcmr: u16(582),
  nmcmr: u16(584),
  mcdqpc: u16(586),
  subnqn: asciiz(768, SUBNQN_BYTES),
  ioccsz: u32(1792),
  iorcsz: u32(1796),
  icdoff: u16(1800),
  fcatt: u8(1802),
  msdbd: u8(1803),
  ofcs: u16(1804),
  dctype: u8(1806),
  psd: structs(PSD_OFFSET, POWER_STATE_DESCRIPTORS, POWER_STATE_DESCRIPTOR_BYTES, psdLayout),
  vs: bytes(IDENTIFY_CONTROLLER_VS_OFFSET, IDENTIFY_CONTROLLER_VS_BYTES),
};

export function encodeIdentifyController(v: IdentifyController, dst?: Uint8Array): Uint8Array {
  const out = target(dst, IDENTIFY_CONTROLLER_BYTES);
  writeLayout(layout, v, dataView(out));
  return out;
}

export function decodeIdentifyController(src: Uint8Array): IdentifyController {
  return readLayout(layout, dataView(fit(src, IDENTIFY_CONTROLLER_BYTES)));
}

/** A power state descriptor with every field 0. */
export function makePowerStateDescriptor(fields: Partial<PowerStateDescriptor> = {}): PowerStateDescriptor {
  return { ...readLayout(psdLayout, new DataView(new ArrayBuffer(POWER_STATE_DESCRIPTOR_BYTES))), ...fields };
}

/** An Identify Controller value with every field 0 / empty / all 32 descriptors zero, then `fields`. */
export function makeIdentifyController(fields: Partial<IdentifyController> = {}): IdentifyController {
  return { ...decodeIdentifyController(new Uint8Array(IDENTIFY_CONTROLLER_BYTES)), ...fields };
}

/** SQES / CQES byte from required and maximum entry sizes (log2 bytes): 6/6 → 0x66, 4/4 → 0x44. */
export function entrySizes(requiredLog2: number, maximumLog2: number): number {
  return ((maximumLog2 & 0xf) << 4) | (requiredLog2 & 0xf);
}

/** CMIC bits. */
export const CMIC_MULTI_PORT = 1 << 0;
export const CMIC_MULTI_CONTROLLER = 1 << 1;
/** The controller is associated with an SR-IOV Virtual Function. */
export const CMIC_SRIOV_VF = 1 << 2;
export const CMIC_ANA_REPORTING = 1 << 3;

/** OAES bits. */
export const OAES_NAMESPACE_ATTRIBUTE_NOTICES = 1 << 8;
export const OAES_FIRMWARE_ACTIVATION_NOTICES = 1 << 9;
export const OAES_ANA_CHANGE_NOTICES = 1 << 11;

/** CTRATT bits (subset). */
export const CTRATT_HOST_ID_128 = 1 << 0;
export const CTRATT_NOPSPM = 1 << 1;
export const CTRATT_NVM_SETS = 1 << 2;
export const CTRATT_READ_RECOVERY_LEVELS = 1 << 3;
export const CTRATT_ENDURANCE_GROUPS = 1 << 4;
export const CTRATT_PREDICTABLE_LATENCY = 1 << 5;
export const CTRATT_TBKAS = 1 << 6;
export const CTRATT_NAMESPACE_GRANULARITY = 1 << 7;
export const CTRATT_SQ_ASSOCIATIONS = 1 << 8;
export const CTRATT_UUID_LIST = 1 << 9;

/** CNTRLTYPE values. */
export const ControllerType = { NotReported: 0, Io: 1, Discovery: 2, Administrative: 3 } as const;

/** OACS bits (Optional Admin Command Support). */
export const OACS_SSRS = 1 << 0; // Security Send / Receive
export const OACS_FNVMS = 1 << 1; // Format NVM
export const OACS_FWDS = 1 << 2; // Firmware Commit / Image Download
/** Namespace Management (and Namespace Attachment). */
export const OACS_NMS = 1 << 3;
export const OACS_DSTS = 1 << 4; // Device Self-test
export const OACS_DIRS = 1 << 5; // Directives
export const OACS_NSRS = 1 << 6; // NVMe-MI Send / Receive
/** Virtualization Management. */
export const OACS_VMS = 1 << 7;
/** Doorbell Buffer Config (DBCS). */
export const OACS_DBBUF = 1 << 8;
export const OACS_DBCS = OACS_DBBUF;
export const OACS_GLSS = 1 << 9; // Get LBA Status
export const OACS_CFLS = 1 << 10; // Command and Feature Lockdown
/** TP4159 Host Managed Live Migration Support. */
export const OACS_HMLMS = 1 << 11;

/** ONCS bits (Optional NVM Command Support). */
export const ONCS_COMPARE = 1 << 0;
export const ONCS_WRITE_UNCORRECTABLE = 1 << 1;
export const ONCS_DATASET_MANAGEMENT = 1 << 2;
export const ONCS_WRITE_ZEROES = 1 << 3;
/** Save field in Set Features / Select field in Get Features. */
export const ONCS_SAVE_FEATURES = 1 << 4;
export const ONCS_RESERVATIONS = 1 << 5;
export const ONCS_TIMESTAMP = 1 << 6;
export const ONCS_VERIFY = 1 << 7;
export const ONCS_COPY = 1 << 8;
/** Write Zeroes with DEAC set deallocates (WZDS). */
export const ONCS_WRITE_ZEROES_DEALLOCATE = 1 << 11;

/** FUSES bits. */
export const FUSES_COMPARE_AND_WRITE = 1 << 0;

/** FNA bits (Format NVM Attributes). */
export const FNA_FORMAT_ALL_NAMESPACES = 1 << 0;
export const FNA_SECURE_ERASE_ALL_NAMESPACES = 1 << 1;
export const FNA_CRYPTO_ERASE = 1 << 2;

/** VWC: bit 0 present; bits 2:1 = 11b Flush with NSID FFFFFFFFh supported, 10b not supported. */
export const VWC_PRESENT = 1 << 0;
export const VWC_FLUSH_BROADCAST_SUPPORTED = 0x3 << 1;
export const VWC_FLUSH_BROADCAST_NOT_SUPPORTED = 0x2 << 1;

/** FRMW bits: bit 0 slot 1 read-only, bits 3:1 number of slots, bit 4 activation without reset. */
export const FRMW_SLOT1_READ_ONLY = 1 << 0;
export const FRMW_ACTIVATION_WITHOUT_RESET = 1 << 4;
export function frmwSlots(frmw: number): number {
  return (frmw >> 1) & 0x7;
}

/** LPA bits (Log Page Attributes). */
export const LPA_SMART_PER_NAMESPACE = 1 << 0;
export const LPA_COMMANDS_SUPPORTED_AND_EFFECTS = 1 << 1;
/** Extended data for Get Log Page (NUMDU, LPOL/LPOU). */
export const LPA_EXTENDED_DATA = 1 << 2;
export const LPA_TELEMETRY = 1 << 3;
export const LPA_PERSISTENT_EVENT = 1 << 4;

/** SGLS: bits 1:0 = 01b SGLs supported (no alignment), 10b dword aligned. */
export const SGLS_SUPPORTED_BYTE_ALIGNED = 0x1;
export const SGLS_SUPPORTED_DWORD_ALIGNED = 0x2;
export const SGLS_KEYED = 1 << 2;
export const SGLS_BIT_BUCKET = 1 << 16;
export const SGLS_MPTR_BYTE_ALIGNED = 1 << 17;
export const SGLS_OVERSIZE = 1 << 18;
export const SGLS_MPTR_SGL = 1 << 19;
export const SGLS_OFFSET = 1 << 20;

/** TRATTR bits (TP4159 Tracking Attributes). */
export const TRATTR_THMCS = 1 << 0; // Track Host Memory Changes Support
export const TRATTR_TUDCS = 1 << 1; // Track User Data Changes Support
export const TRATTR_MRTLL = 1 << 2; // Memory Range Tracking Length Limit
