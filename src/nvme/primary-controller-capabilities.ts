/**
 * Primary Controller Capabilities data structure (Identify CNS 14h, 4096 bytes), NVMe Base 2.1
 * Figure "Primary Controller Capabilities Structure" (reference §4.12). VQ = Virtual Queue resources
 * (queue pairs), VI = Virtual Interrupt resources (MSI-X vectors).
 */
import { dataView, fit, type Layout, readLayout, target, u8, u16, u32, writeLayout } from "./codec.ts";

export const PRIMARY_CONTROLLER_CAPABILITIES_BYTES = 4096;

export interface PrimaryControllerCapabilities {
  /** Controller Identifier of the primary controller. */
  cntlid: number;
  /** Port Identifier. */
  portid: number;
  /** Controller Resource Types (CRT_*). */
  crt: number;
  /** VQ Resources Flexible Total. */
  vqfrt: number;
  /** VQ Resources Flexible Assigned (to secondaries). */
  vqrfa: number;
  /** VQ Resources Flexible Allocated to Primary. */
  vqrfap: number;
  /** VQ Resources Private Total. */
  vqprt: number;
  /** VQ Resources Flexible Secondary Maximum. */
  vqfrsm: number;
  /** VQ Flexible Resource Preferred Granularity. */
  vqgran: number;
  /** VI Resources Flexible Total. */
  vifrt: number;
  /** VI Resources Flexible Assigned. */
  virfa: number;
  /** VI Resources Flexible Allocated to Primary. */
  virfap: number;
  /** VI Resources Private Total. */
  viprt: number;
  /** VI Resources Flexible Secondary Maximum. */
  vifrsm: number;
  /** VI Flexible Resource Preferred Granularity. */
  vigran: number;
}

const layout: Layout<PrimaryControllerCapabilities> = {
  cntlid: u16(0),
  portid: u16(2),
  crt: u8(4),
  vqfrt: u32(32),
  vqrfa: u32(36),
  vqrfap: u16(40),
  vqprt: u16(42),
  vqfrsm: u16(44),
  vqgran: u16(46),
  vifrt: u32(64),
  virfa: u32(68),
  virfap: u16(72),
  viprt: u16(74),
  vifrsm: u16(76),
  vigran: u16(78),
};

/** CRT bits: VQ and VI resources are supported. */
export const CRT_VQ = 1 << 0;
export const CRT_VI = 1 << 1;

export function encodePrimaryControllerCapabilities(
  v: PrimaryControllerCapabilities,
  dst?: Uint8Array,
): Uint8Array {
  const out = target(dst, PRIMARY_CONTROLLER_CAPABILITIES_BYTES);
  writeLayout(layout, v, dataView(out));
  return out;
}

export function decodePrimaryControllerCapabilities(src: Uint8Array): PrimaryControllerCapabilities {
  return readLayout(layout, dataView(fit(src, PRIMARY_CONTROLLER_CAPABILITIES_BYTES)));
}
