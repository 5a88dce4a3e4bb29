/**
 * Conversions between the backend's domain types (backend.ts) and the generated protobuf messages
 * (src/gen). Used by the server (domain → wire for results, wire → domain for requests) and the
 * client (the reverse). Internal to src/control — not API.
 *
 * Enum rule (see the proto's compatibility rule): a wire value this code does not know becomes the
 * domain value `unknown` (responses) or is refused as `invalid-argument` (requests).
 */
import * as pb from "../gen/nvmig/v1/migration.ts";
import type {
  ChangedLbaRange,
  ControlEvent,
  EntrySequence,
  FunctionDetails,
  FunctionInfo,
  FunctionState,
  LbaChangeInfo,
  LeaseInfo,
  SequencedControlEvent,
  SuspendType,
} from "./backend.ts";

/** A two-way table between a domain string union and a protobuf enum. */
class EnumTable<D extends string> {
  readonly #toWire: ReadonlyMap<D, number>;
  readonly #fromWire: ReadonlyMap<number, D>;

  constructor(pairs: ReadonlyArray<readonly [D, number]>) {
    this.#toWire = new Map(pairs);
    this.#fromWire = new Map(pairs.map(([d, w]) => [w, d]));
  }

  /** Wire value; 0 (UNSPECIFIED) for a domain value without one (`unknown`). */
  toWire(value: D): number {
    return this.#toWire.get(value) ?? 0;
  }

  /** Domain value, or undefined for UNSPECIFIED and values this version does not know. */
  fromWire(value: number): D | undefined {
    return this.#fromWire.get(value);
  }
}

export const functionStates = new EnumTable<FunctionState>([
  ["running", pb.FunctionState.FUNCTION_STATE_RUNNING],
  ["suspending", pb.FunctionState.FUNCTION_STATE_SUSPENDING],
  ["suspended", pb.FunctionState.FUNCTION_STATE_SUSPENDED],
  ["resuming", pb.FunctionState.FUNCTION_STATE_RESUMING],
  ["offline", pb.FunctionState.FUNCTION_STATE_OFFLINE],
  ["resetting", pb.FunctionState.FUNCTION_STATE_RESETTING],
]);

export const suspendTypes = new EnumTable<SuspendType>([
  ["notification", pb.SuspendType.SUSPEND_TYPE_NOTIFICATION],
  ["suspend", pb.SuspendType.SUSPEND_TYPE_SUSPEND],
]);

export const entrySequences = new EnumTable<EntrySequence>([
  ["none", pb.EntrySequence.ENTRY_SEQUENCE_NONE],
  ["first", pb.EntrySequence.ENTRY_SEQUENCE_FIRST],
  ["last-logging-stopped", pb.EntrySequence.ENTRY_SEQUENCE_LAST_LOGGING_STOPPED],
  ["last-suspended", pb.EntrySequence.ENTRY_SEQUENCE_LAST_SUSPENDED],
  ["last-queue-full", pb.EntrySequence.ENTRY_SEQUENCE_LAST_QUEUE_FULL],
]);

export const lbaChangeInfos = new EnumTable<LbaChangeInfo>([
  ["range-valid", pb.LbaChangeInfo.LBA_CHANGE_INFO_RANGE_VALID],
  ["all-changed", pb.LbaChangeInfo.LBA_CHANGE_INFO_ALL_CHANGED],
  ["no-range", pb.LbaChangeInfo.LBA_CHANGE_INFO_NO_RANGE],
]);

export const stateFromWire = (v: number): FunctionState => functionStates.fromWire(v) ?? "unknown";

// ---- domain → wire (server side) ----

export function functionInfoToWire(f: FunctionInfo): pb.FunctionInfo {
  return {
    cntlid: f.cntlid,
    vfNumber: f.vfNumber,
    pciName: f.pciName,
    state: functionStates.toWire(f.state),
    ioQueuePairs: f.ioQueuePairs,
    namespaces: f.namespaces.map((n) => ({ nsid: n.nsid, sizeBlocks: n.sizeBlocks, lbaBytes: n.lbaBytes })),
  };
}

export function leaseToWire(l: LeaseInfo): pb.LeaseInfo {
  return {
    leaseId: l.leaseId,
    cntlid: l.cntlid,
    holder: l.holder,
    description: l.description,
    leaseMs: l.leaseMs,
    expiresAtUnixMs: BigInt(Math.max(0, Math.trunc(l.expiresAtUnixMs))),
  };
}

export function detailsToWire(d: FunctionDetails): pb.DescribeFunctionResponse {
  return {
    function: functionInfoToWire(d.function),
    controllerStateBytes: d.controllerStateBytes,
    userDataLogging: d.userDataLogging,
    dirtyTracking: d.dirtyTracking,
    lease: d.lease === undefined ? undefined : leaseToWire(d.lease),
  };
}

export function changedRangeToWire(r: ChangedLbaRange): pb.ChangedLbaRange {
  return {
    nsid: r.nsid,
    slba: r.slba,
    nlb: r.nlb,
    entrySequence: entrySequences.toWire(r.entrySequence),
    changeInfo: lbaChangeInfos.toWire(r.changeInfo),
    deallocated: r.deallocated,
  };
}

export function eventToWire(e: ControlEvent, sequence: bigint): pb.WatchEventsResponse {
  const base = { sequence, timeUnixMs: BigInt(Math.max(0, Math.trunc(e.timeUnixMs))), cntlid: e.cntlid };
  switch (e.kind) {
    case "state-changed":
      return {
        ...base,
        event: {
          $case: "stateChanged",
          value: { fromState: functionStates.toWire(e.fromState), toState: functionStates.toWire(e.toState) },
        },
      };
    case "async-event":
      return { ...base, event: { $case: "asyncEvent", value: { aet: e.aet, aei: e.aei, lid: e.lid } } };
    case "lease-expired":
      return { ...base, event: { $case: "leaseExpired", value: { leaseId: e.leaseId, holder: e.holder } } };
  }
}

// ---- wire → domain (client side) ----

export function functionInfoFromWire(f: pb.FunctionInfo): FunctionInfo {
  return {
    cntlid: f.cntlid,
    vfNumber: f.vfNumber,
    pciName: f.pciName,
    state: stateFromWire(f.state),
    ioQueuePairs: f.ioQueuePairs,
    namespaces: f.namespaces.map((n) => ({ nsid: n.nsid, sizeBlocks: n.sizeBlocks, lbaBytes: n.lbaBytes })),
  };
}

export function leaseFromWire(l: pb.LeaseInfo): LeaseInfo {
  return {
    leaseId: l.leaseId,
    cntlid: l.cntlid,
    holder: l.holder,
    description: l.description,
    leaseMs: l.leaseMs,
    expiresAtUnixMs: Number(l.expiresAtUnixMs),
  };
}

/** `function` is required; a response without it is a broken server (returns undefined). */
export function detailsFromWire(d: pb.DescribeFunctionResponse): FunctionDetails | undefined {
  if (d.function === undefined) return undefined;
  const details: FunctionDetails = {
    function: functionInfoFromWire(d.function),
    controllerStateBytes: d.controllerStateBytes,
    userDataLogging: d.userDataLogging,
    dirtyTracking: d.dirtyTracking,
  };
  if (d.lease !== undefined) details.lease = leaseFromWire(d.lease);
  return details;
}

export function changedRangeFromWire(r: pb.ChangedLbaRange): ChangedLbaRange {
  return {
    nsid: r.nsid,
    slba: r.slba,
    nlb: r.nlb,
    entrySequence: entrySequences.fromWire(r.entrySequence) ?? "unknown",
    changeInfo: lbaChangeInfos.fromWire(r.changeInfo) ?? "unknown",
    deallocated: r.deallocated,
  };
}

/** Undefined for an event kind this client does not know (skipped by the caller). */
export function eventFromWire(e: pb.WatchEventsResponse): SequencedControlEvent | undefined {
  const base = { sequence: e.sequence, cntlid: e.cntlid, timeUnixMs: Number(e.timeUnixMs) };
  switch (e.event?.$case) {
    case "stateChanged":
      return {
        ...base,
        kind: "state-changed",
        fromState: stateFromWire(e.event.value.fromState),
        toState: stateFromWire(e.event.value.toState),
      };
    case "asyncEvent":
      return {
        ...base,
        kind: "async-event",
        aet: e.event.value.aet,
        aei: e.event.value.aei,
        lid: e.event.value.lid,
      };
    case "leaseExpired":
      return { ...base, kind: "lease-expired", leaseId: e.event.value.leaseId, holder: e.event.value.holder };
    default:
      return undefined;
  }
}
