/**
 * A namespace of the NVM subsystem: its blocks (a `BlockStore`) and identity. Namespaces are shared by
 * every controller they are attached to (primary and secondaries alike).
 */
import type { BlockStore } from "../storage/block-store.ts";

export interface NamespaceConfig {
  /** Namespace Identifier, 1..0xFFFFFFFE. */
  nsid: number;
  store: BlockStore;
  /** Namespace Globally Unique Identifier (16 bytes); derived from the subsystem serial and NSID if absent. */
  nguid?: Uint8Array;
  /** IEEE Extended Unique Identifier (8 bytes). */
  eui64?: Uint8Array;
  /** Namespace UUID (16 bytes). */
  uuid?: Uint8Array;
}

export class Namespace {
  readonly nsid: number;
  readonly store: BlockStore;
  readonly nguid: Uint8Array;
  readonly eui64: Uint8Array;
  readonly uuid: Uint8Array;
  /** Block size as a power of two (LBADS). */
  readonly lbads: number;

  constructor(cfg: NamespaceConfig, serial: string) {
    this.nsid = cfg.nsid;
    this.store = cfg.store;
    this.lbads = Math.log2(cfg.store.lbaBytes);
    this.nguid = cfg.nguid ?? deriveId(16, `${serial}/ns${cfg.nsid}/nguid`);
    this.eui64 = cfg.eui64 ?? deriveId(8, `${serial}/ns${cfg.nsid}/eui64`);
    this.uuid = cfg.uuid ?? deriveId(16, `${serial}/ns${cfg.nsid}/uuid`);
  }

  get lbaBytes(): number {
    return this.store.lbaBytes;
  }
  get lbaCount(): number {
    return this.store.lbaCount;
  }
}

/** Deterministic identifier bytes from a string (FNV-1a spread), never all zero. */
function deriveId(n: number, s: string): Uint8Array {
  const out = new Uint8Array(n);
  let h = 0x811c9dc5;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < s.length; j++) {
      h ^= s.charCodeAt(j) + i;
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    out[i] = h & 0xff;
  }
  out[0] = (out[0]! | 0x02) & 0xfe;
  return out;
}
