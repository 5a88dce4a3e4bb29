/**
 * One submission/completion queue pair as the guest driver keeps it (host side of NVMe Base 2.1 §3.3):
 * the rings live in guest memory, the driver owns SQ tail, CQ head and CQ phase, and command slots.
 *
 * Command slots: a queue of `entries` entries carries at most `entries - 1` commands, so one slot per
 * possible outstanding command is pre-allocated (completion callback, submit time, PRP list pages) and
 * nothing is allocated per command. The CID of a command is `(generation << slotBits) | slot`; the
 * generation advances every time the slot is reused, so a late or repeated completion for an old
 * command is recognised as a duplicate instead of completing the slot's new command. Free slots are
 * reused FIFO, which maximises the time before a CID comes back.
 *
 * Doorbells: an MMIO write of the new SQ tail / CQ head, or — with shadow doorbells (Doorbell Buffer
 * Config) — a write of the value into the shadow doorbell buffer, then the MMIO write only when the
 * controller's EventIdx says it needs one (the spec's rule: ring if the new value passed EventIdx,
 * i.e. (u16)(new − eventIdx − 1) < (u16)(new − old)).
 *
 * Not API: used by `GuestNvmeDriver` only.
 */
import { cqHeadDoorbell, DOORBELL_BASE, sqTailDoorbell } from "../nvme/registers.ts";
import { CQE_BYTES, SQE_BYTES } from "../nvme/sqe.ts";
import type { FunctionPort } from "./function-port.ts";
import { GUEST_PAGE_BYTES, type GuestMemory } from "./guest-memory.ts";
import { assignTyped, base64ToTyped, typedToBase64 } from "./state-codec.ts";

/** Completion callback of one command: status is the 15-bit Status Field (0 = success). */
export type CompletionCallback = (status: number, dw0: number, cid: number) => void;

/** Shadow doorbell / EventIdx buffers (guest-physical, one page each). */
export interface DoorbellBuffers {
  shadowGpa: number;
  eventIdxGpa: number;
}

/** Is a doorbell write needed? Values are u16 queue indices (NVMe shadow doorbell EventIdx rule). */
export function doorbellNeedsEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}

export interface QueuePairConfig {
  qid: number;
  /** Entries in each ring (SQ and CQ alike), 2..65536. */
  entries: number;
  /** Command slots (≤ entries − 1). */
  slots: number;
  sqGpa: number;
  cqGpa: number;
  /** MSI-X vector of the CQ; -1 when interrupts are disabled (IEN = 0). */
  vector: number;
  /** CAP.DSTRD. */
  dstrd: number;
  /** PRP list pages reserved per slot (0 = commands of at most two pages). */
  prpListPagesPerSlot: number;
  /** GPA of `slots × prpListPagesPerSlot` contiguous pages (ignored when that is 0). */
  prpListGpa: number;
}

/** `QueuePair.saveState()`. Typed arrays as base64; `tokens[slot]` null for a free slot. */
export interface QueuePairState {
  config: Omit<QueuePairConfig, "dstrd">;
  sqTail: number;
  sqHead: number;
  cqHead: number;
  cqPhase: number;
  cids: string;
  generations: string;
  freeSlots: string;
  freeHead: number;
  freeCount: number;
  abortSent: string;
  noTimeout: string;
  tokens: (string | null)[];
  agesMs: number[];
  shadow: { shadowGpa: number; eventIdxGpa: number; lastSq: number; lastCq: number } | null;
  counters: {
    completions: number;
    duplicateCompletions: number;
    mmioDoorbells: number;
    skippedDoorbells: number;
  };
}

export class QueuePair {
  readonly qid: number;
  readonly entries: number;
  readonly slots: number;
  readonly sqGpa: number;
  readonly cqGpa: number;
  readonly vector: number;
  readonly prpListPagesPerSlot: number;
  readonly prpListGpa: number;

  /** Next SQ entry the driver fills. */
  sqTail = 0;
  /** SQ head as last reported by a CQE (SQHD). */
  sqHead = 0;
  /** Next CQ entry the driver expects. */
  cqHead = 0;
  /** Phase tag that marks a new CQ entry (starts at 1). */
  cqPhase = 1;
  /** DW1 of the completion being delivered (for admin callers that need it). */
  lastDw1 = 0;

  /** Per-slot state. */
  readonly cids: Uint16Array;
  readonly outstanding: Uint8Array;
  readonly callbacks: Array<CompletionCallback | undefined>;
  /** `performance.now()` at submission, ms. */
  readonly submittedAtMs: Float64Array;
  /** 1 once the driver sent an Abort for the slot's command (I/O timeout). */
  readonly abortSent: Uint8Array;
  /** 1 for commands that never time out (Asynchronous Event Requests). */
  readonly noTimeout: Uint8Array;
  readonly slotBits: number;
  private readonly slotMask: number;
  private readonly generations: Uint16Array;
  private readonly freeSlots: Uint16Array;
  private freeHead = 0;
  private freeCount: number;
  outstandingCount = 0;

  /** Set when the SQ tail moved since the last SQ doorbell. */
  sqDoorbellPending = false;
  private readonly sqDoorbellOffset: number;
  private readonly cqDoorbellOffset: number;
  /** Offsets of this queue's entries in the shadow doorbell and EventIdx buffers. */
  private readonly bufferSqOffset: number;
  private readonly bufferCqOffset: number;
  private dbbuf = false;
  private shadowBase = 0;
  private eventIdxBase = 0;
  private lastSqDoorbell = 0;
  private lastCqDoorbell = 0;
  /** Also ring MMIO for every update while shadow doorbells are on (the admin queue). */
  private readonly alwaysMmio: boolean;

  /** Reaping in progress (a nested reap of the same CQ returns at once). */
  private reaping = false;

  /** Completions delivered. */
  completions = 0;
  /** CQEs whose CID was not outstanding, or that named another SQ. */
  duplicateCompletions = 0;
  /** MMIO doorbell writes made. */
  mmioDoorbells = 0;
  /** Doorbell updates the shadow doorbell rule let us skip. */
  skippedDoorbells = 0;

  constructor(
    private readonly port: FunctionPort,
    private readonly mem: GuestMemory,
    config: QueuePairConfig,
    private readonly onDuplicate: (qid: number, cid: number, sqid: number) => void,
  ) {
    const { qid, entries, slots, dstrd } = config;
    if (!Number.isInteger(entries) || entries < 2 || entries > 65536) {
      throw new RangeError(`queue entries ${entries} out of range 2..65536`);
    }
    if (!Number.isInteger(slots) || slots < 1 || slots > entries - 1) {
      throw new RangeError(`slots ${slots} out of range 1..${entries - 1}`);
    }
    this.qid = qid;
    this.entries = entries;
    this.slots = slots;
    this.sqGpa = config.sqGpa;
    this.cqGpa = config.cqGpa;
    this.vector = config.vector;
    this.prpListPagesPerSlot = config.prpListPagesPerSlot;
    this.prpListGpa = config.prpListGpa;
    this.alwaysMmio = qid === 0;
    this.slotBits = Math.max(1, 32 - Math.clz32(slots - 1));
    this.slotMask = (1 << this.slotBits) - 1;
    this.cids = new Uint16Array(slots);
    this.outstanding = new Uint8Array(slots);
    this.callbacks = new Array<CompletionCallback | undefined>(slots).fill(undefined);
    this.submittedAtMs = new Float64Array(slots);
    this.abortSent = new Uint8Array(slots);
    this.noTimeout = new Uint8Array(slots);
    this.generations = new Uint16Array(slots);
    this.freeSlots = new Uint16Array(slots);
    for (let i = 0; i < slots; i++) this.freeSlots[i] = i;
    this.freeCount = slots;
    this.sqDoorbellOffset = sqTailDoorbell(qid, dstrd);
    this.cqDoorbellOffset = cqHeadDoorbell(qid, dstrd);
    // The shadow buffers mirror the doorbell register layout (offset from 1000h).
    this.bufferSqOffset = this.sqDoorbellOffset - DOORBELL_BASE;
    this.bufferCqOffset = this.cqDoorbellOffset - DOORBELL_BASE;
  }

  /** Free command slots. */
  get freeSlotCount(): number {
    return this.freeCount;
  }

  /** Byte offset in the SQ ring of the entry at the tail (where the next command goes). */
  get tailEntryGpa(): number {
    return this.sqGpa + this.sqTail * SQE_BYTES;
  }

  /** GPA of the first PRP list page of `slot`. */
  prpListGpaOf(slot: number): number {
    return this.prpListGpa + slot * this.prpListPagesPerSlot * GUEST_PAGE_BYTES;
  }

  /** Takes a free slot and gives it a fresh CID; returns the slot or -1. */
  allocSlot(): number {
    if (this.freeCount === 0) return -1;
    const slot = this.freeSlots[this.freeHead]!;
    this.freeHead = this.freeHead + 1 === this.slots ? 0 : this.freeHead + 1;
    this.freeCount--;
    let gen = (this.generations[slot]! + 1) & (0xffff >>> this.slotBits);
    let cid = ((gen << this.slotBits) | slot) & 0xffff;
    if (cid === 0xffff) {
      // FFFFh means "no specific command" in error logs; skip it.
      gen = (gen + 1) & (0xffff >>> this.slotBits);
      cid = ((gen << this.slotBits) | slot) & 0xffff;
    }
    this.generations[slot] = gen;
    this.cids[slot] = cid;
    return slot;
  }

  private releaseSlot(slot: number): void {
    let at = this.freeHead + this.freeCount;
    if (at >= this.slots) at -= this.slots;
    this.freeSlots[at] = slot;
    this.freeCount++;
  }

  /**
   * Makes `slot` outstanding with `cb`; the caller has written the SQE at `tailEntryGpa` (CID set).
   * Advances the tail and marks the SQ doorbell pending (the caller rings).
   */
  commit(slot: number, cb: CompletionCallback, nowMs: number): void {
    this.outstanding[slot] = 1;
    this.callbacks[slot] = cb;
    this.submittedAtMs[slot] = nowMs;
    this.abortSent[slot] = 0;
    this.noTimeout[slot] = 0;
    this.outstandingCount++;
    this.mem.markDirty(this.tailEntryGpa, SQE_BYTES);
    this.sqTail = this.sqTail + 1 === this.entries ? 0 : this.sqTail + 1;
    this.sqDoorbellPending = true;
  }

  /** Returns a slot taken by `allocSlot` that was not committed. */
  cancelSlot(slot: number): void {
    this.releaseSlot(slot);
  }

  /** Slot of an outstanding command with this CID, or -1. */
  slotOfCid(cid: number): number {
    const slot = cid & this.slotMask;
    if (slot >= this.slots || this.outstanding[slot] !== 1 || this.cids[slot] !== cid) return -1;
    return slot;
  }

  /** Turns shadow doorbells on (after a successful Doorbell Buffer Config) or off (undefined). */
  setDoorbellBuffers(buffers: DoorbellBuffers | undefined): void {
    if (buffers === undefined) {
      this.dbbuf = false;
      return;
    }
    this.dbbuf = true;
    this.shadowBase = buffers.shadowGpa;
    this.eventIdxBase = buffers.eventIdxGpa;
    // Shadow values start at what the controller already has.
    this.mem.writeU32(this.shadowBase + this.bufferSqOffset, this.sqTail);
    this.mem.writeU32(this.shadowBase + this.bufferCqOffset, this.cqHead);
    this.lastSqDoorbell = this.sqTail;
    this.lastCqDoorbell = this.cqHead;
  }
  /** Writes the SQ tail doorbell if the tail moved. */
  ringSq(): void {
    if (!this.sqDoorbellPending) return;
    this.sqDoorbellPending = false;
    const value = this.sqTail;
    if (this.dbbuf) {
      const old = this.lastSqDoorbell;
      this.lastSqDoorbell = value;
      this.mem.writeU32(this.shadowBase + this.bufferSqOffset, value);
      const ei = this.mem.dataView.getUint32(this.eventIdxBase + this.bufferSqOffset, true);
      if (!this.alwaysMmio && !doorbellNeedsEvent(ei, value, old)) {
        this.skippedDoorbells++;
        return;
      }
    }
    this.mmioDoorbells++;
    this.port.write32(0, this.sqDoorbellOffset, value);
  }

  private ringCq(): void {
    const value = this.cqHead;
    if (this.dbbuf) {
      const old = this.lastCqDoorbell;
      this.lastCqDoorbell = value;
      this.mem.writeU32(this.shadowBase + this.bufferCqOffset, value);
      const ei = this.mem.dataView.getUint32(this.eventIdxBase + this.bufferCqOffset, true);
      if (!this.alwaysMmio && !doorbellNeedsEvent(ei, value, old)) {
        this.skippedDoorbells++;
        return;
      }
    }
    this.mmioDoorbells++;
    this.port.write32(0, this.cqDoorbellOffset, value);
  }

  /**
   * Consumes every new CQ entry, delivering each to its slot's callback, then writes the CQ head
   * doorbell once. Returns the number of entries consumed. Re-entrant calls (a callback polling the
   * same queue) return 0; the outer loop picks up what they would have seen.
   */
  reap(): number {
    if (this.reaping) return 0;
    this.reaping = true;
    const v = this.mem.dataView;
    const base = this.cqGpa;
    let n = 0;
    try {
      for (;;) {
        const at = base + this.cqHead * CQE_BYTES;
        const sf = v.getUint16(at + 14, true);
        if ((sf & 1) !== this.cqPhase) break;
        const dw0 = v.getUint32(at, true);
        const dw1 = v.getUint32(at + 4, true);
        const sqhd = v.getUint16(at + 8, true);
        const sqid = v.getUint16(at + 10, true);
        const cid = v.getUint16(at + 12, true);
        if (this.cqHead + 1 === this.entries) {
          this.cqHead = 0;
          this.cqPhase ^= 1;
        } else this.cqHead++;
        n++;
        this.sqHead = sqhd;
        const slot = sqid === this.qid ? this.slotOfCid(cid) : -1;
        if (slot < 0) {
          this.duplicateCompletions++;
          this.onDuplicate(this.qid, cid, sqid);
          continue;
        }
        const cb = this.callbacks[slot]!;
        this.callbacks[slot] = undefined;
        this.outstanding[slot] = 0;
        this.outstandingCount--;
        this.releaseSlot(slot);
        this.completions++;
        this.lastDw1 = dw1;
        cb(sf >>> 1, dw0, cid);
      }
    } finally {
      this.reaping = false;
      if (n > 0) this.ringCq();
    }
    return n;
  }

  /**
   * Completes every outstanding command with `status` without the controller (controller reset or
   * shutdown: those commands are gone). Callbacks run in slot order.
   */
  failAll(status: number): number {
    let n = 0;
    for (let slot = 0; slot < this.slots; slot++) {
      if (this.outstanding[slot] !== 1) continue;
      const cb = this.callbacks[slot]!;
      const cid = this.cids[slot]!;
      this.callbacks[slot] = undefined;
      this.outstanding[slot] = 0;
      this.outstandingCount--;
      this.releaseSlot(slot);
      n++;
      this.lastDw1 = 0;
      cb(status, 0, cid);
    }
    return n;
  }

  /**
   * The queue's driver-side state for a migrated guest (`guest-state.ts`): rings, slots and their
   * CIDs, and per outstanding slot the callback's token (from `tokenOf`) and its age in ms.
   */
  saveState(nowMs: number, tokenOf: (slot: number, cb: CompletionCallback) => string): QueuePairState {
    const tokens: (string | null)[] = [];
    const agesMs: number[] = [];
    for (let slot = 0; slot < this.slots; slot++) {
      const cb = this.callbacks[slot];
      const out = this.outstanding[slot] === 1 && cb !== undefined;
      tokens.push(out ? tokenOf(slot, cb) : null);
      agesMs.push(out ? nowMs - this.submittedAtMs[slot]! : 0);
    }
    return {
      config: {
        qid: this.qid,
        entries: this.entries,
        slots: this.slots,
        sqGpa: this.sqGpa,
        cqGpa: this.cqGpa,
        vector: this.vector,
        prpListPagesPerSlot: this.prpListPagesPerSlot,
        prpListGpa: this.prpListGpa,
      },
      sqTail: this.sqTail,
      sqHead: this.sqHead,
      cqHead: this.cqHead,
      cqPhase: this.cqPhase,
      cids: typedToBase64(this.cids),
      generations: typedToBase64(this.generations),
      freeSlots: typedToBase64(this.freeSlots),
      freeHead: this.freeHead,
      freeCount: this.freeCount,
      abortSent: typedToBase64(this.abortSent),
      noTimeout: typedToBase64(this.noTimeout),
      tokens,
      agesMs,
      shadow: this.dbbuf
        ? {
            shadowGpa: this.shadowBase,
            eventIdxGpa: this.eventIdxBase,
            lastSq: this.lastSqDoorbell,
            lastCq: this.lastCqDoorbell,
          }
        : null,
      counters: {
        completions: this.completions,
        duplicateCompletions: this.duplicateCompletions,
        mmioDoorbells: this.mmioDoorbells,
        skippedDoorbells: this.skippedDoorbells,
      },
    };
  }

  /**
   * Takes over a saved state (this queue was built from the same `config`); `callbackFor` turns each
   * outstanding slot's token back into its completion callback.
   * @throws RangeError when the state does not fit this queue.
   */
  loadState(
    s: QueuePairState,
    nowMs: number,
    callbackFor: (token: string, slot: number) => CompletionCallback,
  ): void {
    const n = this.slots;
    const cids = base64ToTyped(Uint16Array, s.cids, n, `queue ${this.qid} cids`);
    assignTyped(this.cids, cids, "cids");
    assignTyped(this.generations, base64ToTyped(Uint16Array, s.generations, n, "generations"), "generations");
    assignTyped(this.freeSlots, base64ToTyped(Uint16Array, s.freeSlots, n, "free slots"), "free slots");
    assignTyped(this.abortSent, base64ToTyped(Uint8Array, s.abortSent, n, "abortSent"), "abortSent");
    assignTyped(this.noTimeout, base64ToTyped(Uint8Array, s.noTimeout, n, "noTimeout"), "noTimeout");
    if (s.tokens.length !== n || s.agesMs.length !== n) throw new RangeError(`queue ${this.qid}: slot count`);
    const ring = (x: number) => Number.isInteger(x) && x >= 0 && x < this.entries;
    if (!ring(s.sqTail) || !ring(s.sqHead) || !ring(s.cqHead) || (s.cqPhase !== 0 && s.cqPhase !== 1))
      throw new RangeError(`queue ${this.qid}: ring indices`);
    this.sqTail = s.sqTail;
    this.sqHead = s.sqHead;
    this.cqHead = s.cqHead;
    this.cqPhase = s.cqPhase;
    this.freeHead = s.freeHead;
    this.freeCount = s.freeCount;
    this.outstandingCount = 0;
    for (let slot = 0; slot < n; slot++) {
      const token = s.tokens[slot];
      if (token === null || token === undefined) {
        this.outstanding[slot] = 0;
        this.callbacks[slot] = undefined;
        continue;
      }
      this.outstanding[slot] = 1;
      this.callbacks[slot] = callbackFor(token, slot);
      this.submittedAtMs[slot] = nowMs - (s.agesMs[slot] ?? 0);
      this.outstandingCount++;
    }
    if (s.shadow !== null) {
      this.dbbuf = true;
      this.shadowBase = s.shadow.shadowGpa;
      this.eventIdxBase = s.shadow.eventIdxGpa;
      this.lastSqDoorbell = s.shadow.lastSq;
      this.lastCqDoorbell = s.shadow.lastCq;
    } else this.dbbuf = false;
    this.completions = s.counters.completions;
    this.duplicateCompletions = s.counters.duplicateCompletions;
    this.mmioDoorbells = s.counters.mmioDoorbells;
    this.skippedDoorbells = s.counters.skippedDoorbells;
    this.sqDoorbellPending = false;
  }

  /**
   * Writes both doorbells by MMIO with the current values (and the shadow copies): after a
   * migration, doorbell writes the source held while the vCPUs were stopped never reached a device,
   * and writing the current tail/head again is always valid.
   */
  ringBoth(): void {
    if (this.dbbuf) {
      this.mem.writeU32(this.shadowBase + this.bufferSqOffset, this.sqTail);
      this.mem.writeU32(this.shadowBase + this.bufferCqOffset, this.cqHead);
      this.lastSqDoorbell = this.sqTail;
      this.lastCqDoorbell = this.cqHead;
    }
    this.sqDoorbellPending = false;
    this.mmioDoorbells += 2;
    this.port.write32(0, this.sqDoorbellOffset, this.sqTail);
    this.port.write32(0, this.cqDoorbellOffset, this.cqHead);
  }

  /**
   * Resets ring indices to a freshly created queue (after a controller reset re-creates it). The
   * caller zeroes the CQ ring so stale entries cannot match the phase tag.
   */
  resetRings(): void {
    this.sqTail = 0;
    this.sqHead = 0;
    this.cqHead = 0;
    this.cqPhase = 1;
    this.sqDoorbellPending = false;
    this.lastSqDoorbell = 0;
    this.lastCqDoorbell = 0;
    this.dbbuf = false;
  }
}
