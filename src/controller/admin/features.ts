/**
 * Set Features (09h) and Get Features (0Ah) — NVMe Base 2.1 §5.2.26 / §5.2.11, with the feature
 * value layouts of §5.2.26.1. CDW10: FID bits 7:0, SV bit 31 (Set), SEL bits 10:8 (Get).
 *
 * No feature is saveable (SV = 1 → Feature Identifier Not Saveable; SEL = Saved returns the default).
 * None is namespace specific: an NSID other than 0 or FFFFFFFFh → Feature Not Namespace Specific.
 * Get with SEL = Supported Capabilities returns DW0 bit 2 (changeable).
 */
import { FeatureId, FeatureSelect } from "../../nvme/identifiers.ts";
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";
import { defaultFeatures, type FeatureValues } from "../features-state.ts";

export interface FeatureHandler {
  /** Applies CDW11.. of the current SQE; returns a status and may set `c.dw0`. */
  set(c: NvmeController): number;
  /** Returns the value in DW0 for the selected source. */
  get(c: NvmeController, values: FeatureValues): number;
  /** Only the primary controller implements it. */
  primaryOnly?: boolean;
}

const CAPABILITY_CHANGEABLE = 1 << 2;
/** Number of Power State Descriptors minus one (NPSS). */
const NPSS = 0;

function cdw(c: NvmeController, n: number): number {
  return c.sqe.getUint32(n * 4, true);
}

const handlers = new Map<number, FeatureHandler>([
  [
    FeatureId.Arbitration,
    {
      set: (c) => {
        c.features.arbitration = cdw(c, 11);
        return Status.Success;
      },
      get: (_c, v) => v.arbitration,
    },
  ],
  [
    FeatureId.PowerManagement,
    {
      set: (c) => {
        const v = cdw(c, 11);
        if ((v & 0x1f) > NPSS) return Status.InvalidField;
        c.features.powerManagement = v & 0xff;
        return Status.Success;
      },
      get: (_c, v) => v.powerManagement,
    },
  ],
  [
    FeatureId.TemperatureThreshold,
    {
      set: (c) => {
        const v = cdw(c, 11);
        const key = thresholdKey(v);
        if (key === undefined) return Status.InvalidField;
        c.features.temperatureThresholds[key] = v & 0xffff;
        return Status.Success;
      },
      get: (c, v) => {
        const key = thresholdKey(cdw(c, 11));
        return key === undefined ? 0 : (v.temperatureThresholds[key] ?? 0);
      },
    },
  ],
  [
    FeatureId.ErrorRecovery,
    {
      set: (c) => {
        const v = cdw(c, 11);
        if ((v & (1 << 16)) !== 0) return Status.InvalidField; // DULBE: deallocated-block errors not supported
        c.features.errorRecovery = v & 0xffff;
        return Status.Success;
      },
      get: (_c, v) => v.errorRecovery,
    },
  ],
  [
    FeatureId.VolatileWriteCache,
    {
      set: (c) => {
        if (!c.vwcPresent) return Status.InvalidField;
        c.features.volatileWriteCache = cdw(c, 11) & 1;
        return Status.Success;
      },
      get: (_c, v) => v.volatileWriteCache,
    },
  ],
  [
    FeatureId.NumberOfQueues,
    {
      set: (c) => {
        const v = cdw(c, 11);
        const nsqr = v & 0xffff;
        const ncqr = v >>> 16;
        if (nsqr === 0xffff || ncqr === 0xffff) return Status.InvalidField;
        const counts = c.ioQueueCounts();
        if (counts.sqs > 0 || counts.cqs > 0) return Status.CommandSequenceError;
        const max0 = c.maxIoQueuePairs - 1;
        const nsqa = Math.min(nsqr, max0);
        const ncqa = Math.min(ncqr, max0);
        c.features.numberOfQueues = (nsqa | (ncqa << 16)) >>> 0;
        c.dw0 = c.features.numberOfQueues;
        return Status.Success;
      },
      get: (c, v) => {
        const max0 = c.maxIoQueuePairs - 1;
        return v.numberOfQueues < 0 ? (max0 | (max0 << 16)) >>> 0 : v.numberOfQueues;
      },
    },
  ],
  [
    FeatureId.InterruptCoalescing,
    {
      set: (c) => {
        c.features.interruptCoalescing = cdw(c, 11) & 0xffff;
        return Status.Success;
      },
      get: (_c, v) => v.interruptCoalescing,
    },
  ],
  [
    FeatureId.InterruptVectorConfiguration,
    {
      set: (c) => {
        const v = cdw(c, 11);
        const iv = v & 0xffff;
        if (iv >= c.msixVectors) return Status.InvalidField;
        c.features.interruptVectorConfig[String(iv)] = v & 0x1ffff;
        return Status.Success;
      },
      get: (c, v) => {
        const iv = cdw(c, 11) & 0xffff;
        return v.interruptVectorConfig[String(iv)] ?? iv;
      },
    },
  ],
  [
    FeatureId.WriteAtomicityNormal,
    {
      set: (c) => {
        c.features.writeAtomicity = cdw(c, 11) & 1;
        return Status.Success;
      },
      get: (_c, v) => v.writeAtomicity,
    },
  ],
  [
    FeatureId.AsynchronousEventConfiguration,
    {
      set: (c) => {
        c.features.asyncEventConfig = cdw(c, 11);
        return Status.Success;
      },
      get: (_c, v) => v.asyncEventConfig,
    },
  ],
]);

/** Adds a feature (the live-migration module registers Controller Data Queue, 21h). */
export function registerFeature(fid: number, h: FeatureHandler): void {
  handlers.set(fid, h);
}

function thresholdKey(cdw11: number): string | undefined {
  const tmpsel = (cdw11 >>> 16) & 0xf;
  const thsel = (cdw11 >>> 20) & 0x3;
  if (thsel > 1) return undefined;
  if (tmpsel !== 0) return undefined; // only the Composite Temperature sensor exists
  return String((thsel << 4) | tmpsel);
}

function lookup(c: NvmeController): FeatureHandler | number {
  const fid = cdw(c, 10) & 0xff;
  const h = handlers.get(fid);
  if (h === undefined || (h.primaryOnly === true && !c.primary)) return Status.InvalidField;
  const nsid = c.sqe.getUint32(4, true);
  if (nsid !== 0 && nsid !== 0xffffffff) return Status.FeatureNotNamespaceSpecific;
  return h;
}

export function setFeatures(c: NvmeController): number {
  const h = lookup(c);
  if (typeof h === "number") return h;
  if ((cdw(c, 10) & (1 << 31)) !== 0) return Status.FeatureNotSaveable;
  return h.set(c);
}

export function getFeatures(c: NvmeController): number {
  const h = lookup(c);
  if (typeof h === "number") return h;
  const sel = (cdw(c, 10) >>> 8) & 0x7;
  switch (sel) {
    case FeatureSelect.Current:
      c.dw0 = h.get(c, c.features) >>> 0;
      return Status.Success;
    case FeatureSelect.Default:
    case FeatureSelect.Saved:
      c.dw0 = h.get(c, defaultFeatures(c.vwcPresent)) >>> 0;
      return Status.Success;
    case FeatureSelect.SupportedCapabilities:
      c.dw0 = CAPABILITY_CHANGEABLE;
      return Status.Success;
    default:
      return Status.InvalidField;
  }
}
