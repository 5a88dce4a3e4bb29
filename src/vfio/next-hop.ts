/**
 * The VFIO migration v2 finite-state machine as data: the kernel's raw next-hop table
 * (`vfio_mig_get_next_state`), the per-state flag requirements, and the primitive arcs.
 *
 * A SET names only the target; the portal walks `nextHop` one primitive arc at a time. The raw table is
 * written for a device with every optional state; states the device lacks are skipped by re-looking-up
 * from the skipped state. Unlike a literal port of the kernel loop, the skip loop here stops at ERROR,
 * so STOP_COPY → PRE_COPY(_P2P) returns EINVAL instead of spinning forever.
 */
import { Errno, isMigState, MIG_FLAGS_ALL, MigFlag, MigState } from "./states.ts";

const { ERROR, STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P } = MigState;

/**
 * Raw next-hop table, `NEXT_HOP_TABLE[cur][target]` = next primitive state, for a device with all of
 * STOP_COPY, P2P and PRE_COPY. Row and column ERROR are all ERROR; ERROR elsewhere means "forbidden".
 */
// biome-ignore format: the table is laid out as in the kernel source, one row per current state
export const NEXT_HOP_TABLE: readonly (readonly MigState[])[] = [
  //                 target: ERROR  STOP         RUNNING      STOP_COPY     RESUMING     RUNNING_P2P  PRE_COPY      PRE_COPY_P2P
  /* ERROR        */ [ERROR, ERROR,       ERROR,       ERROR,        ERROR,       ERROR,       ERROR,        ERROR],
  /* STOP         */ [ERROR, STOP,        RUNNING_P2P, STOP_COPY,    RESUMING,    RUNNING_P2P, RUNNING_P2P,  RUNNING_P2P],
  /* RUNNING      */ [ERROR, RUNNING_P2P, RUNNING,     RUNNING_P2P,  RUNNING_P2P, RUNNING_P2P, PRE_COPY,     RUNNING_P2P],
  /* STOP_COPY    */ [ERROR, STOP,        STOP,        STOP_COPY,    STOP,        STOP,        ERROR,        ERROR],
  /* RESUMING     */ [ERROR, STOP,        STOP,        STOP,         RESUMING,    STOP,        STOP,         STOP],
  /* RUNNING_P2P  */ [ERROR, STOP,        RUNNING,     STOP,         STOP,        RUNNING_P2P, RUNNING,      PRE_COPY_P2P],
  /* PRE_COPY     */ [ERROR, RUNNING,     RUNNING,     PRE_COPY_P2P, RUNNING,     RUNNING,     PRE_COPY,     PRE_COPY_P2P],
  /* PRE_COPY_P2P */ [ERROR, RUNNING_P2P, RUNNING_P2P, STOP_COPY,    RUNNING_P2P, RUNNING_P2P, PRE_COPY,     PRE_COPY_P2P],
];

/** `VFIO_MIGRATION_*` bits a state needs; ERROR needs "all ones", i.e. is never a supported state. */
const ALL_ONES = 0xffff_ffff;
export const STATE_REQUIRED_FLAGS: readonly number[] = [
  /* ERROR */ ALL_ONES,
  /* STOP */ MigFlag.STOP_COPY,
  /* RUNNING */ MigFlag.STOP_COPY,
  /* STOP_COPY */ MigFlag.STOP_COPY,
  /* RESUMING */ MigFlag.STOP_COPY,
  /* RUNNING_P2P */ MigFlag.STOP_COPY | MigFlag.P2P,
  /* PRE_COPY */ MigFlag.STOP_COPY | MigFlag.PRE_COPY,
  /* PRE_COPY_P2P */ MigFlag.STOP_COPY | MigFlag.P2P | MigFlag.PRE_COPY,
];

/** True if `flags` is a valid migration capability: STOP_COPY set and no unknown bits. */
export function isValidMigrationFlags(flags: number): boolean {
  return (
    Number.isInteger(flags) &&
    (flags & MigFlag.STOP_COPY) !== 0 &&
    (flags & ~MIG_FLAGS_ALL) === 0 &&
    flags >= 0
  );
}

/** True if a device with `flags` has state `s` (ERROR is never "supported": it cannot be requested). */
export function isStateSupported(s: number, flags: number): s is MigState {
  if (!isMigState(s)) return false;
  const need = STATE_REQUIRED_FLAGS[s]!;
  return (need & flags) >>> 0 === need;
}

/** The requestable states of a device with `flags`, in numeric order (never includes ERROR). */
export function supportedStates(flags: number): MigState[] {
  const out: MigState[] = [];
  for (let s = 0; s < NEXT_HOP_TABLE.length; s++) if (isStateSupported(s, flags)) out.push(s as MigState);
  return out;
}

/** Failure of `nextHop`: the transition is invalid for this device (always EINVAL). */
export interface NextHopError {
  readonly errno: number;
}

/**
 * The next primitive state on the way from `cur` to `target` for a device with `flags`.
 * EINVAL if either end is not a supported state (ERROR included) or the combination is forbidden
 * (STOP_COPY → PRE_COPY / PRE_COPY_P2P). `cur === target` returns `cur` (no arc).
 */
export function nextHop(cur: number, target: number, flags: number): MigState | NextHopError {
  if (!isStateSupported(cur, flags) || !isStateSupported(target, flags)) return { errno: Errno.EINVAL };
  let n = NEXT_HOP_TABLE[cur]![target]!;
  // Skip optional states the device lacks. ERROR is never supported, so stop there (the guard the
  // kernel loop lacks); every other state needs at most two skips, so the loop is bounded.
  while (n !== ERROR && !isStateSupported(n, flags)) n = NEXT_HOP_TABLE[n]![target]!;
  if (n === ERROR) return { errno: Errno.EINVAL };
  return n;
}

/**
 * The whole path `cur → … → target` (excluding `cur`), or the error of the first failing hop.
 * Empty for `cur === target` (a supported state).
 */
export function transitionPath(cur: number, target: number, flags: number): MigState[] | NextHopError {
  if (!isStateSupported(cur, flags) || !isStateSupported(target, flags)) return { errno: Errno.EINVAL };
  const path: MigState[] = [];
  let s = cur;
  while (s !== target) {
    const n = nextHop(s, target, flags);
    if (typeof n !== "number") return n;
    path.push(n);
    s = n;
    if (path.length > NEXT_HOP_TABLE.length) throw new Error(`next-hop cycle ${cur} → ${target}`); // table bug
  }
  return path;
}

/** What a primitive arc does to the data session (the data_fd). */
export type ArcSessionEffect =
  /** no session effect */
  | "none"
  /** creates a new saving session (new data_fd) */
  | "open-saving"
  /** the saving session continues on the same data_fd (pre-copy → stop-copy, P2P quiesce) */
  | "continue-saving"
  /** the saving session is terminated */
  | "end-saving"
  /** creates a new resuming session (new data_fd) */
  | "open-resuming"
  /** the resuming session is committed (validated and loaded) and terminated */
  | "end-resuming";

/** One primitive arc of §1.4 of the VFIO v2 reference. */
export interface Arc {
  readonly from: MigState;
  readonly to: MigState;
  readonly session: ArcSessionEffect;
  /** True for the four arcs that hand a new data_fd back to the caller. */
  readonly createsSession: boolean;
}

function arc(from: MigState, to: MigState, session: ArcSessionEffect): Arc {
  return { from, to, session, createsSession: session === "open-saving" || session === "open-resuming" };
}

/** Every primitive arc a variant driver may be asked to perform. */
export const ARCS: readonly Arc[] = [
  arc(RUNNING, STOP, "none"),
  arc(STOP, RUNNING, "none"),
  arc(RUNNING, RUNNING_P2P, "none"),
  arc(RUNNING_P2P, RUNNING, "none"),
  arc(RUNNING_P2P, STOP, "none"),
  arc(STOP, RUNNING_P2P, "none"),
  arc(STOP, STOP_COPY, "open-saving"),
  arc(STOP_COPY, STOP, "end-saving"),
  arc(STOP, RESUMING, "open-resuming"),
  arc(RESUMING, STOP, "end-resuming"),
  arc(RUNNING, PRE_COPY, "open-saving"),
  arc(PRE_COPY, RUNNING, "end-saving"),
  arc(PRE_COPY, STOP_COPY, "continue-saving"),
  arc(RUNNING_P2P, PRE_COPY_P2P, "open-saving"),
  arc(PRE_COPY_P2P, RUNNING_P2P, "end-saving"),
  arc(PRE_COPY, PRE_COPY_P2P, "continue-saving"),
  arc(PRE_COPY_P2P, PRE_COPY, "continue-saving"),
  arc(PRE_COPY_P2P, STOP_COPY, "continue-saving"),
];

const ARC_INDEX: ReadonlyMap<number, Arc> = new Map(ARCS.map((a) => [a.from * 8 + a.to, a]));

/** The primitive arc `from → to`, or undefined if there is none. */
export function findArc(from: number, to: number): Arc | undefined {
  if (!isMigState(from) || !isMigState(to)) return undefined;
  return ARC_INDEX.get(from * 8 + to);
}

/** The saving group: states that hold a saving session. */
export function isSavingState(s: number): boolean {
  return s === STOP_COPY || s === PRE_COPY || s === PRE_COPY_P2P;
}

/** True for PRE_COPY and PRE_COPY_P2P. */
export function isPreCopyState(s: number): boolean {
  return s === PRE_COPY || s === PRE_COPY_P2P;
}
