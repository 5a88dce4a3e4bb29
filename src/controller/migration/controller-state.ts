/**
 * Capture and restore of a whole controller's state as a TP4159 Controller State blob:
 * 48-byte header + NVMe Controller State (I/O SQs and CQs, byte-exact) + nvmig vendor section.
 *
 * Restore is all-or-nothing: `validateControllerState` checks sizes, versions, identity, resources and
 * that every queue (and shadow doorbell buffer) lies in the destination's mapped guest memory before
 * `applyControllerState` changes anything.
 */
import {
  CONTROLLER_STATE_HEADER_VER,
  type ControllerState,
  CSATTR_SUSPENDED,
  decodeControllerState,
  decodeIocqa,
  decodeIosqa,
  encodeControllerState,
  encodeIocqa,
  encodeIosqa,
  type IoCompletionQueueState,
  type IoSubmissionQueueState,
  NVME_CONTROLLER_STATE_VER,
} from "../../nvme/controller-state.ts";
import { AQA, CSTS } from "../../nvme/registers.ts";
import { CQE_BYTES, SQE_BYTES } from "../../nvme/sqe.ts";
import type { NvmeController } from "../controller.ts";
import { ControllerEvent, emitEvent } from "../events.ts";
import type { FeatureValues } from "../features-state.ts";
import { CompletionQueue, SubmissionQueue } from "../queues.ts";
import {
  decodeVendorState,
  encodeVendorState,
  VENDOR_STATE_FORMAT,
  VENDOR_STATE_VERSION,
  type VendorState,
} from "./vendor-state.ts";

/** The PCI function's share of the state (config space, MSI-X), supplied by the function that owns the controller. */
export interface FunctionStateHooks {
  capture(): unknown;
  /** A reason the state cannot be restored here, or undefined. Must not change anything. */
  validate(state: unknown): string | undefined;
  restore(state: unknown): void;
}

export interface CaptureOptions {
  /** Include the NVMe-defined NVMe Controller State (CSVI ≠ 0). Default true. */
  nvmeState?: boolean;
  /** Include the nvmig vendor section (CSUUIDI ≠ 0). Default true. */
  vendorState?: boolean;
}

/** Phase tag found in slot 0 of a CQ (S0PT) from the controller's current phase and tail. */
function s0pt(cq: CompletionQueue): boolean {
  return (cq.tail > 0 ? cq.phase : cq.phase ^ 1) === 1;
}

function phaseFromS0pt(s0: boolean, tail: number): number {
  const p = s0 ? 1 : 0;
  return tail > 0 ? p : p ^ 1;
}

/** A copy of feature values (plain fields and two flat records; cheaper than `structuredClone`). */
function copyFeatures(f: FeatureValues): FeatureValues {
  return {
    ...f,
    temperatureThresholds: { ...f.temperatureThresholds },
    interruptVectorConfig: { ...f.interruptVectorConfig },
  };
}

export function captureVendorState(c: NvmeController): VendorState {
  const id = c.subsystem.identity;
  const asq = c.sqs[0];
  const acq = c.cqs[0];
  const overflow: VendorState["cqOverflow"] = {};
  c.cqs.forEach((cq) => {
    if (cq !== undefined && cq.overflow.length > 0)
      overflow[String(cq.cqid)] = cq.overflow.map((p) => ({ ...p }));
  });
  return {
    format: VENDOR_STATE_FORMAT,
    version: VENDOR_STATE_VERSION,
    identity: { serial: id.serial, model: id.model, subnqn: id.subnqn, vid: id.vid, cntlid: c.cntlid },
    registers: { cc: c.cc, csts: c.csts, aqa: c.aqa, asq: c.asq, acq: c.acq, intms: c.intms },
    adminQueue:
      asq !== undefined && acq !== undefined
        ? { sqHead: asq.head, sqTail: asq.tail, cqHead: acq.head, cqTail: acq.tail, cqPhase: acq.phase }
        : null,
    resources: { maxIoQueuePairs: c.maxIoQueuePairs, msixVectors: c.msixVectors },
    features: copyFeatures(c.features),
    asyncEvents: {
      outstanding: [...c.asyncEvents.outstanding],
      pending: c.asyncEvents.pending.map((p) => ({ ...p })),
      maskedTypes: [...c.asyncEvents.maskedTypes],
      errorCount: c.asyncEvents.errorCount.toString(),
    },
    dbbuf: c.dbbuf === undefined ? null : { ...c.dbbuf },
    cqOverflow: overflow,
    namespaces: { attached: [...c.attachedNamespaces], changed: [...c.changedNamespaces] },
    stats: {
      hostReadCommands: c.stats.hostReadCommands,
      hostWriteCommands: c.stats.hostWriteCommands,
      dataUnitsReadBytes: c.stats.dataUnitsReadBytes,
      dataUnitsWrittenBytes: c.stats.dataUnitsWrittenBytes,
    },
    suspendNotified: c.suspendNotified,
    pciFunction: c.functionState?.capture() ?? null,
  };
}

/** Captures the controller's state as a TP4159 Controller State blob. */
export function captureControllerState(c: NvmeController, opts: CaptureOptions = {}): Uint8Array {
  if (c.ready) c.refreshDoorbells();
  const iosq: IoSubmissionQueueState[] = [];
  const iocq: IoCompletionQueueState[] = [];
  for (let qid = 1; qid < c.sqs.length; qid++) {
    const sq = c.sqs[qid];
    if (sq === undefined) continue;
    iosq.push({
      iosqprp1: sq.baseIova,
      iosqqsize: sq.sizeEntries - 1,
      iosqqid: sq.sqid,
      iosqcqid: sq.cqid,
      iosqa: encodeIosqa({ pc: true, qprio: sq.qprio }),
      iosqhp: sq.head,
      iosqtp: sq.tail,
    });
  }
  for (let qid = 1; qid < c.cqs.length; qid++) {
    const cq = c.cqs[qid];
    if (cq === undefined) continue;
    iocq.push({
      iocqprp1: cq.baseIova,
      iocqqsize: cq.sizeEntries - 1,
      iocqqid: cq.cqid,
      iocqhp: cq.head,
      iocqtp: cq.tail,
      iocqa: encodeIocqa({ pc: true, ien: cq.ien, s0pt: s0pt(cq) ? 1 : 0, iv: cq.iv }),
    });
  }
  const state: ControllerState = {
    ver: CONTROLLER_STATE_HEADER_VER,
    csattr: c.suspended ? CSATTR_SUSPENDED : 0,
    nvme: opts.nvmeState === false ? undefined : { ver: NVME_CONTROLLER_STATE_VER, sqs: iosq, cqs: iocq },
    vendor: opts.vendorState === false ? new Uint8Array(0) : encodeVendorState(captureVendorState(c)),
  };
  const blob = encodeControllerState(state);
  emitEvent(ControllerEvent.stateSaved, c.cntlid, {
    bytes: blob.byteLength,
    iosq: iosq.length,
    iocq: iocq.length,
  });
  return blob;
}

/** A validated state, ready to apply. */
export interface ValidatedState {
  vendor: VendorState;
  iosq: IoSubmissionQueueState[];
  iocq: IoCompletionQueueState[];
}

export type ValidateResult = { ok: true; state: ValidatedState } | { ok: false; reason: string };

/** Checks a blob against controller `c` (the destination) without changing anything. */
export function validateControllerState(c: NvmeController, blob: Uint8Array): ValidateResult {
  const fail = (reason: string): ValidateResult => ({ ok: false, reason });
  const d = decodeControllerState(blob);
  if (!d.ok) return fail(`${d.error}: ${d.detail}`);
  const s = d.value;
  if (s.ver !== CONTROLLER_STATE_HEADER_VER) return fail(`unsupported controller state VER ${s.ver}`);
  if ((s.csattr & CSATTR_SUSPENDED) === 0) return fail("state was not captured from a suspended controller");
  if (s.nvme === undefined) return fail("no NVMe Controller State (CSVI 0)");
  if (s.nvme.ver !== NVME_CONTROLLER_STATE_VER)
    return fail(`unsupported NVMe Controller State VER ${s.nvme.ver}`);
  if (s.vendor.byteLength === 0) return fail("no vendor-specific state (CSUUIDI 0)");
  const vr = decodeVendorState(s.vendor);
  if (!vr.ok) return fail(vr.reason);
  const v = vr.value;
  const id = c.subsystem.identity;
  if (v.identity.serial !== id.serial || v.identity.model !== id.model || v.identity.subnqn !== id.subnqn)
    return fail(
      `identity mismatch: state from ${v.identity.subnqn} / ${v.identity.serial}, this is ${id.subnqn} / ${id.serial}`,
    );
  if (v.resources.maxIoQueuePairs > c.maxIoQueuePairs)
    return fail(
      `state needs ${v.resources.maxIoQueuePairs} I/O queue pairs, this controller has ${c.maxIoQueuePairs}`,
    );
  if (v.resources.msixVectors > c.msixVectors)
    return fail(
      `state needs ${v.resources.msixVectors} interrupt vectors, this controller has ${c.msixVectors}`,
    );
  for (const nsid of v.namespaces.attached)
    if (!c.subsystem.namespaces.has(nsid)) return fail(`namespace ${nsid} does not exist here`);

  const pageBytes = 4096 << ((v.registers.cc >>> 7) & 0xf);
  const enabled = (v.registers.cc & 1) !== 0;
  if (enabled) {
    if (v.adminQueue === null) return fail("enabled controller without admin queue state");
    const asqs = AQA.asqsOf(v.registers.aqa) + 1;
    const acqs = AQA.acqsOf(v.registers.aqa) + 1;
    const a = v.adminQueue;
    if (a.sqHead >= asqs || a.sqTail >= asqs || a.cqHead >= acqs || a.cqTail >= acqs)
      return fail("admin queue pointer out of range");
    if (!c.dma.contains(v.registers.asq, asqs * SQE_BYTES))
      return fail("admin SQ outside mapped guest memory");
    if (!c.dma.find(v.registers.acq, acqs * CQE_BYTES)?.writable)
      return fail("admin CQ outside mapped guest memory");
  }
  const cqIds = new Set<number>();
  for (const q of s.nvme.cqs) {
    const size = q.iocqqsize + 1;
    const a = decodeIocqa(q.iocqa);
    if (q.iocqqid === 0 || q.iocqqid > v.resources.maxIoQueuePairs || cqIds.has(q.iocqqid))
      return fail(`invalid I/O CQ id ${q.iocqqid}`);
    if (size < 2 || size > c.mqes + 1) return fail(`I/O CQ ${q.iocqqid} size ${size} out of range`);
    if (q.iocqhp >= size || q.iocqtp >= size) return fail(`I/O CQ ${q.iocqqid} pointer out of range`);
    if (!a.pc) return fail(`I/O CQ ${q.iocqqid} not physically contiguous`);
    if (a.iv >= v.resources.msixVectors) return fail(`I/O CQ ${q.iocqqid} vector ${a.iv} out of range`);
    if (q.iocqprp1 % pageBytes !== 0 || !c.dma.find(q.iocqprp1, size * CQE_BYTES)?.writable)
      return fail(`I/O CQ ${q.iocqqid} at 0x${q.iocqprp1.toString(16)} outside mapped guest memory`);
    cqIds.add(q.iocqqid);
  }
  const sqIds = new Set<number>();
  for (const q of s.nvme.sqs) {
    const size = q.iosqqsize + 1;
    if (q.iosqqid === 0 || q.iosqqid > v.resources.maxIoQueuePairs || sqIds.has(q.iosqqid))
      return fail(`invalid I/O SQ id ${q.iosqqid}`);
    if (size < 2 || size > c.mqes + 1) return fail(`I/O SQ ${q.iosqqid} size ${size} out of range`);
    if (q.iosqhp >= size || q.iosqtp >= size) return fail(`I/O SQ ${q.iosqqid} pointer out of range`);
    if (!cqIds.has(q.iosqcqid)) return fail(`I/O SQ ${q.iosqqid} names missing CQ ${q.iosqcqid}`);
    if (!decodeIosqa(q.iosqa).pc) return fail(`I/O SQ ${q.iosqqid} not physically contiguous`);
    if (q.iosqprp1 % pageBytes !== 0 || !c.dma.contains(q.iosqprp1, size * SQE_BYTES))
      return fail(`I/O SQ ${q.iosqqid} at 0x${q.iosqprp1.toString(16)} outside mapped guest memory`);
    sqIds.add(q.iosqqid);
  }
  if ((s.nvme.sqs.length > 0 || s.nvme.cqs.length > 0) && !enabled)
    return fail("I/O queues on a disabled controller");
  if (
    v.dbbuf !== null &&
    (!c.dma.find(v.dbbuf.shadowIova, pageBytes) || !c.dma.find(v.dbbuf.eventIdxIova, pageBytes)?.writable)
  )
    return fail("shadow doorbell buffers outside mapped guest memory");
  for (const [cqid, list] of Object.entries(v.cqOverflow)) {
    const id = Number(cqid);
    if (!(id === 0 ? enabled : cqIds.has(id))) return fail(`overflow completions for missing CQ ${cqid}`);
    for (const p of list)
      if (p.sqid !== 0 && !sqIds.has(p.sqid)) return fail(`overflow completion for missing SQ ${p.sqid}`);
  }
  if (v.asyncEvents.outstanding.length > 0 && !enabled)
    return fail("outstanding AERs on a disabled controller");
  if (c.functionState !== undefined && v.pciFunction !== null) {
    const why = c.functionState.validate(v.pciFunction);
    if (why !== undefined) return fail(`PCI function state: ${why}`);
  }
  return { ok: true, state: { vendor: v, iosq: s.nvme.sqs, iocq: s.nvme.cqs } };
}

/**
 * Applies a validated state to `c`. The controller stays suspended; Resume starts it. Unfetched SQEs
 * are still in guest memory and are fetched after Resume, from the migrated heads up to the tails.
 */
export function applyControllerState(c: NvmeController, s: ValidatedState): void {
  const v = s.vendor;
  c.controllerReset("restore");
  c.suspended = true;
  c.cc = v.registers.cc;
  c.aqa = v.registers.aqa;
  c.asq = v.registers.asq;
  c.acq = v.registers.acq;
  c.intms = v.registers.intms;
  c.csts = v.registers.csts & ~CSTS.CFS;
  c.features = copyFeatures(v.features);
  c.suspendNotified = v.suspendNotified;
  c.attachedNamespaces.clear();
  for (const n of v.namespaces.attached) c.attachedNamespaces.add(n);
  c.changedNamespaces.clear();
  for (const n of v.namespaces.changed) c.changedNamespaces.add(n);
  c.stats.hostReadCommands = v.stats.hostReadCommands;
  c.stats.hostWriteCommands = v.stats.hostWriteCommands;
  c.stats.dataUnitsReadBytes = v.stats.dataUnitsReadBytes;
  c.stats.dataUnitsWrittenBytes = v.stats.dataUnitsWrittenBytes;
  if ((c.cc & 1) !== 0 && v.adminQueue !== null) {
    const asqs = AQA.asqsOf(c.aqa) + 1;
    const acqs = AQA.acqsOf(c.aqa) + 1;
    const sw = c.dma.window(c.asq, asqs * SQE_BYTES)!;
    const cw = c.dma.window(c.acq, acqs * CQE_BYTES)!;
    const acq = new CompletionQueue(0, c.acq, acqs, true, 0, cw.region, cw.offset);
    acq.head = v.adminQueue.cqHead;
    acq.tail = v.adminQueue.cqTail;
    acq.phase = v.adminQueue.cqPhase;
    acq.sqCount = 1;
    const asq = new SubmissionQueue(0, 0, c.asq, asqs, 0, sw.region, sw.offset);
    asq.head = v.adminQueue.sqHead;
    asq.tail = v.adminQueue.sqTail;
    c.cqs[0] = acq;
    c.sqs[0] = asq;
    c.activeSqs = [asq];
    c.doorbells[0] = asq.tail;
    c.doorbells[1] = acq.head;
  }
  for (const q of s.iocq) {
    const size = q.iocqqsize + 1;
    const a = decodeIocqa(q.iocqa);
    const w = c.dma.window(q.iocqprp1, size * CQE_BYTES)!;
    const cq = new CompletionQueue(q.iocqqid, q.iocqprp1, size, a.ien, a.iv, w.region, w.offset);
    cq.head = q.iocqhp;
    cq.tail = q.iocqtp;
    cq.phase = phaseFromS0pt(a.s0pt === 1, q.iocqtp);
    c.cqs[cq.cqid] = cq;
    c.doorbells[cq.cqid * 2 + 1] = cq.head;
  }
  const sqs: SubmissionQueue[] = c.sqs[0] !== undefined ? [c.sqs[0]] : [];
  for (const q of [...s.iosq].sort((a, b) => a.iosqqid - b.iosqqid)) {
    const size = q.iosqqsize + 1;
    const w = c.dma.window(q.iosqprp1, size * SQE_BYTES)!;
    const sq = new SubmissionQueue(
      q.iosqqid,
      q.iosqcqid,
      q.iosqprp1,
      size,
      decodeIosqa(q.iosqa).qprio,
      w.region,
      w.offset,
    );
    sq.head = q.iosqhp;
    sq.tail = q.iosqtp;
    c.sqs[sq.sqid] = sq;
    c.cqs[sq.cqid]!.sqCount++;
    c.doorbells[sq.sqid * 2] = sq.tail;
    sqs.push(sq);
  }
  c.activeSqs = sqs;
  for (const [cqid, list] of Object.entries(v.cqOverflow))
    c.cqs[Number(cqid)]?.overflow.push(...list.map((p) => ({ ...p })));
  c.dbbuf = v.dbbuf === null ? undefined : { ...v.dbbuf };
  const ae = c.asyncEvents;
  ae.outstanding = [...v.asyncEvents.outstanding];
  ae.pending = v.asyncEvents.pending.map((p) => ({ ...p }));
  ae.maskedTypes = new Set(v.asyncEvents.maskedTypes);
  ae.errorCount = BigInt(v.asyncEvents.errorCount);
  // Outstanding AER commands were fetched on the source: count them in flight on the admin queue.
  if (c.sqs[0] !== undefined) c.sqs[0].inflight = ae.outstanding.length;
  if (c.functionState !== undefined && v.pciFunction !== null) c.functionState.restore(v.pciFunction);
  emitEvent(ControllerEvent.stateRestored, c.cntlid, { iosq: s.iosq.length, iocq: s.iocq.length });
}

/** Validates, then applies: a reason string when refused (nothing changed), undefined on success. */
export function restoreControllerState(c: NvmeController, blob: Uint8Array): string | undefined {
  const r = validateControllerState(c, blob);
  if (!r.ok) {
    emitEvent(ControllerEvent.stateRejected, c.cntlid, { reason: r.reason });
    return r.reason;
  }
  applyControllerState(c, r.state);
  return undefined;
}
