/**
 * Conformance of the next-hop table against an independent oracle.
 *
 * The oracle knows only §1.4 of the VFIO v2 reference: the primitive arcs with the flag condition under
 * which a device has each, which states exist per flag set, the saving-group rule (PRE_COPY,
 * PRE_COPY_P2P and STOP_COPY are interior hops only when start and target are both in the group) and the
 * forbidden STOP_COPY → PRE_COPY(_P2P). It finds every shortest path by search and insists there is
 * exactly one. It does not read `NEXT_HOP_TABLE`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { DataSession } from "./data-session.ts";
import { FakeMigrationBackend } from "./fake-backend.ts";
import {
  ARCS,
  findArc,
  isValidMigrationFlags,
  NEXT_HOP_TABLE,
  nextHop,
  supportedStates,
  transitionPath,
} from "./next-hop.ts";
import { MigrationPortal } from "./portal.ts";
import { Errno, MigFlag, MigState } from "./states.ts";

const { ERROR, STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P } = MigState;
const SC = MigFlag.STOP_COPY;
const P2P = MigFlag.P2P;
const PRE = MigFlag.PRE_COPY;
const FLAG_SETS = [SC, SC | P2P, SC | PRE, SC | P2P | PRE] as const;

// ─────────────────────────── the oracle (independent of next-hop.ts) ───────────────────────────

interface Caps {
  p2p: boolean;
  pre: boolean;
}
const caps = (flags: number): Caps => ({ p2p: (flags & P2P) !== 0, pre: (flags & PRE) !== 0 });

/** §1.4: [from, to, present for these capabilities, creates a data_fd]. */
const ORACLE_ARCS: ReadonlyArray<readonly [number, number, (c: Caps) => boolean, boolean]> = [
  [RUNNING, STOP, (c) => !c.p2p, false],
  [STOP, RUNNING, (c) => !c.p2p, false],
  [RUNNING, RUNNING_P2P, (c) => c.p2p, false],
  [RUNNING_P2P, RUNNING, (c) => c.p2p, false],
  [RUNNING_P2P, STOP, (c) => c.p2p, false],
  [STOP, RUNNING_P2P, (c) => c.p2p, false],
  [STOP, STOP_COPY, () => true, true],
  [STOP_COPY, STOP, () => true, false],
  [STOP, RESUMING, () => true, true],
  [RESUMING, STOP, () => true, false],
  [RUNNING, PRE_COPY, (c) => c.pre, true],
  [PRE_COPY, RUNNING, (c) => c.pre, false],
  [PRE_COPY, STOP_COPY, (c) => c.pre && !c.p2p, false],
  [RUNNING_P2P, PRE_COPY_P2P, (c) => c.pre && c.p2p, true],
  [PRE_COPY_P2P, RUNNING_P2P, (c) => c.pre && c.p2p, false],
  [PRE_COPY, PRE_COPY_P2P, (c) => c.pre && c.p2p, false],
  [PRE_COPY_P2P, PRE_COPY, (c) => c.pre && c.p2p, false],
  [PRE_COPY_P2P, STOP_COPY, (c) => c.pre && c.p2p, false],
];

/** §1.3: the states a device with these capabilities has. */
function oracleStates(c: Caps): Set<number> {
  const s = new Set<number>([STOP, RUNNING, STOP_COPY, RESUMING]);
  if (c.p2p) s.add(RUNNING_P2P);
  if (c.pre) s.add(PRE_COPY);
  if (c.p2p && c.pre) s.add(PRE_COPY_P2P);
  return s;
}

const SAVING_GROUP = new Set<number>([PRE_COPY, PRE_COPY_P2P, STOP_COPY]);

/** The unique shortest legal path start → target (states after start), or "EINVAL". */
function oraclePath(start: number, target: number, flags: number): number[] | "EINVAL" {
  const c = caps(flags);
  const states = oracleStates(c);
  if (!states.has(start) || !states.has(target)) return "EINVAL";
  if (start === target) return [];
  if (start === STOP_COPY && (target === PRE_COPY || target === PRE_COPY_P2P)) return "EINVAL";
  const groupMove = SAVING_GROUP.has(start) && SAVING_GROUP.has(target);
  const edges = ORACLE_ARCS.filter(([f, t, present]) => present(c) && states.has(f) && states.has(t));
  const found: number[][] = [];
  // Iterative deepening: all simple paths of the smallest length that reaches the target.
  for (let len = 1; len <= 8 && found.length === 0; len++) {
    const extend = (path: number[]): void => {
      const at = path.length === 0 ? start : path[path.length - 1]!;
      if (path.length === len) {
        if (at === target) found.push([...path]);
        return;
      }
      if (path.length > 0 && SAVING_GROUP.has(at) && !groupMove) return; // saving state as interior hop
      for (const [f, t] of edges) {
        if (f !== at || t === start || path.includes(t)) continue;
        path.push(t);
        extend(path);
        path.pop();
      }
    };
    extend([]);
  }
  if (found.length === 0) return "EINVAL";
  assert.equal(found.length, 1, `oracle: ${found.length} shortest paths ${start}→${target} flags ${flags}`);
  return found[0]!;
}

// ─────────────────────────── the four effective tables of §1.5, as data ───────────────────────────

const N = (s: string): number => MigState[s as keyof typeof MigState];

/** Rows: "CUR: cell cell …" in the column order given; "=" is no-op, EINVAL is an error. */
function table(cols: string, rows: string[]): Array<[number, number, number | "EINVAL"]> {
  const colStates = cols.trim().split(/\s+/).map(N);
  const out: Array<[number, number, number | "EINVAL"]> = [];
  for (const row of rows) {
    const [cur, cells] = row.split(":") as [string, string];
    const cellList = cells.trim().split(/\s+/);
    assert.equal(cellList.length, colStates.length);
    cellList.forEach((cell, i) => {
      const target = colStates[i]!;
      out.push([N(cur.trim()), target, cell === "=" ? target : cell === "EINVAL" ? "EINVAL" : N(cell)]);
    });
  }
  return out;
}

const EFFECTIVE: ReadonlyArray<readonly [number, Array<[number, number, number | "EINVAL"]>]> = [
  [
    SC,
    table("RUNNING STOP STOP_COPY RESUMING", [
      "RUNNING: = STOP STOP STOP",
      "STOP: RUNNING = STOP_COPY RESUMING",
      "STOP_COPY: STOP STOP = STOP",
      "RESUMING: STOP STOP STOP =",
    ]),
  ],
  [
    SC | P2P,
    table("RUNNING RUNNING_P2P STOP STOP_COPY RESUMING", [
      "RUNNING: = RUNNING_P2P RUNNING_P2P RUNNING_P2P RUNNING_P2P",
      "RUNNING_P2P: RUNNING = STOP STOP STOP",
      "STOP: RUNNING_P2P RUNNING_P2P = STOP_COPY RESUMING",
      "STOP_COPY: STOP STOP STOP = STOP",
      "RESUMING: STOP STOP STOP STOP =",
    ]),
  ],
  [
    SC | PRE,
    table("RUNNING STOP STOP_COPY RESUMING PRE_COPY", [
      "RUNNING: = STOP STOP STOP PRE_COPY",
      "STOP: RUNNING = STOP_COPY RESUMING RUNNING",
      "STOP_COPY: STOP STOP = STOP EINVAL",
      "RESUMING: STOP STOP STOP = STOP",
      "PRE_COPY: RUNNING RUNNING STOP_COPY RUNNING =",
    ]),
  ],
  [
    SC | P2P | PRE,
    table("RUNNING RUNNING_P2P STOP STOP_COPY RESUMING PRE_COPY PRE_COPY_P2P", [
      "RUNNING: = RUNNING_P2P RUNNING_P2P RUNNING_P2P RUNNING_P2P PRE_COPY RUNNING_P2P",
      "RUNNING_P2P: RUNNING = STOP STOP STOP RUNNING PRE_COPY_P2P",
      "STOP: RUNNING_P2P RUNNING_P2P = STOP_COPY RESUMING RUNNING_P2P RUNNING_P2P",
      "STOP_COPY: STOP STOP STOP = STOP EINVAL EINVAL",
      "RESUMING: STOP STOP STOP STOP = STOP STOP",
      "PRE_COPY: RUNNING RUNNING RUNNING PRE_COPY_P2P RUNNING = PRE_COPY_P2P",
      "PRE_COPY_P2P: RUNNING_P2P RUNNING_P2P RUNNING_P2P STOP_COPY RUNNING_P2P PRE_COPY =",
    ]),
  ],
];

// ─────────────────────────── tests ───────────────────────────

describe("next-hop: constants and structure", () => {
  it("the raw table is 8×8 with row and column ERROR all ERROR and the diagonal identity", () => {
    assert.equal(NEXT_HOP_TABLE.length, 8);
    for (let c = 0; c < 8; c++) {
      assert.equal(NEXT_HOP_TABLE[c]!.length, 8);
      assert.equal(NEXT_HOP_TABLE[ERROR]![c], ERROR);
      assert.equal(NEXT_HOP_TABLE[c]![ERROR], ERROR);
      if (c !== ERROR) assert.equal(NEXT_HOP_TABLE[c]![c], c);
    }
  });

  it("supportedStates matches §1.3 for the four flag sets, never ERROR", () => {
    assert.deepEqual(supportedStates(SC), [STOP, RUNNING, STOP_COPY, RESUMING]);
    assert.deepEqual(supportedStates(SC | P2P), [STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P]);
    assert.deepEqual(supportedStates(SC | PRE), [STOP, RUNNING, STOP_COPY, RESUMING, PRE_COPY]);
    assert.deepEqual(supportedStates(SC | P2P | PRE), [1, 2, 3, 4, 5, 6, 7]);
    for (const f of FLAG_SETS) assert.deepEqual(new Set(supportedStates(f)), oracleStates(caps(f)));
  });

  it("flag validity: STOP_COPY mandatory, no unknown bits", () => {
    for (const f of FLAG_SETS) assert.ok(isValidMigrationFlags(f));
    for (const f of [0, P2P, PRE, P2P | PRE, SC | 8, -1, 1.5])
      assert.equal(isValidMigrationFlags(f), false, `${f}`);
  });

  it("ARCS is exactly the §1.4 arc set, and exactly the four fd-creating arcs create a session", () => {
    const key = (f: number, t: number): string => `${f}>${t}`;
    assert.deepEqual(
      new Set(ARCS.map((a) => key(a.from, a.to))),
      new Set(ORACLE_ARCS.map(([f, t]) => key(f, t))),
    );
    assert.equal(ARCS.length, ORACLE_ARCS.length);
    for (const [f, t, , creates] of ORACLE_ARCS)
      assert.equal(findArc(f, t)?.createsSession, creates, key(f, t));
    assert.deepEqual(
      ARCS.filter((a) => a.createsSession).map((a) => key(a.from, a.to)),
      [key(STOP, STOP_COPY), key(STOP, RESUMING), key(RUNNING, PRE_COPY), key(RUNNING_P2P, PRE_COPY_P2P)],
    );
    assert.equal(findArc(STOP_COPY, PRE_COPY), undefined);
    assert.equal(findArc(9, 1), undefined);
  });
});

describe("next-hop: conformance with the independent oracle", () => {
  for (const flags of FLAG_SETS) {
    it(`every (from, to) in 0..7 × 0..7 for flags ${flags}`, () => {
      for (let from = 0; from < 8; from++) {
        for (let to = 0; to < 8; to++) {
          const want = oraclePath(from, to, flags);
          const got = transitionPath(from, to, flags);
          const hop = nextHop(from, to, flags);
          const where = `${from}→${to} flags ${flags}`;
          if (want === "EINVAL") {
            assert.deepEqual(got, { errno: Errno.EINVAL }, where);
            assert.deepEqual(hop, { errno: Errno.EINVAL }, where);
            continue;
          }
          assert.deepEqual(got, want, where);
          if (from !== to) assert.equal(hop, want[0], where);
          // §1.5 corollaries: the fd-creating arc only last; saving states interior only within the group.
          const full = [from, ...want];
          for (let i = 1; i < full.length; i++) {
            const arc = findArc(full[i - 1]!, full[i]!);
            assert.ok(arc, `${where}: hop ${full[i - 1]}→${full[i]} is an arc`);
            if (arc.createsSession) assert.equal(i, full.length - 1, `${where}: session created mid-path`);
          }
        }
      }
    });
  }

  it("the multi-step paths listed for the full-feature device", () => {
    const f = SC | P2P | PRE;
    assert.deepEqual(transitionPath(PRE_COPY, STOP_COPY, f), [PRE_COPY_P2P, STOP_COPY]);
    assert.deepEqual(transitionPath(PRE_COPY, RESUMING, f), [RUNNING, RUNNING_P2P, STOP, RESUMING]);
    assert.deepEqual(transitionPath(RESUMING, PRE_COPY, f), [STOP, RUNNING_P2P, RUNNING, PRE_COPY]);
    assert.deepEqual(transitionPath(RUNNING, STOP_COPY, f), [RUNNING_P2P, STOP, STOP_COPY]);
    assert.deepEqual(transitionPath(STOP_COPY, RUNNING, f), [STOP, RUNNING_P2P, RUNNING]);
    // PRE_COPY → STOP terminates the pre-copy session (through RUNNING) for every flag set with PRE.
    assert.deepEqual(transitionPath(PRE_COPY, STOP, SC | PRE), [RUNNING, STOP]);
    assert.deepEqual(transitionPath(PRE_COPY, STOP, f), [RUNNING, RUNNING_P2P, STOP]);
  });

  it("STOP_COPY → PRE_COPY(_P2P) is EINVAL and terminates (the guarded skip loop)", () => {
    for (const f of [SC | PRE, SC | P2P | PRE]) {
      assert.deepEqual(nextHop(STOP_COPY, PRE_COPY, f), { errno: Errno.EINVAL });
    }
    assert.deepEqual(nextHop(STOP_COPY, PRE_COPY_P2P, SC | P2P | PRE), { errno: Errno.EINVAL });
  });

  it("ERROR, out-of-range and unsupported ends are EINVAL", () => {
    for (const f of FLAG_SETS) {
      for (const bad of [ERROR, 8, -1, 0xffff_ffff, 2.5, Number.NaN]) {
        assert.deepEqual(nextHop(RUNNING, bad, f), { errno: Errno.EINVAL });
        assert.deepEqual(nextHop(bad, RUNNING, f), { errno: Errno.EINVAL });
      }
    }
    assert.deepEqual(nextHop(RUNNING, RUNNING_P2P, SC), { errno: Errno.EINVAL });
    assert.deepEqual(nextHop(RUNNING, PRE_COPY, SC | P2P), { errno: Errno.EINVAL });
  });
});

describe("next-hop: the four effective tables of §1.5", () => {
  for (const [flags, cells] of EFFECTIVE) {
    it(`flags ${flags}`, () => {
      const states = supportedStates(flags);
      assert.equal(cells.length, states.length * states.length, "table covers every supported pair");
      for (const [cur, target, want] of cells) {
        const got = nextHop(cur, target, flags);
        assert.deepEqual(got, want === "EINVAL" ? { errno: Errno.EINVAL } : want, `${cur}→${target}`);
      }
    });
  }
});

// ─────────────────────────── random walks of setState ───────────────────────────

type Action =
  | { readonly kind: "set"; readonly target: number }
  | { readonly kind: "reset" }
  | { readonly kind: "fail"; readonly errno: number; readonly deviceError: boolean };

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 9 }).map((target): Action => ({ kind: "set", target })) },
  { weight: 1, arbitrary: fc.constant<Action>({ kind: "reset" }) },
  {
    weight: 2,
    arbitrary: fc
      .record({ errno: fc.constantFrom(Errno.EIO, Errno.EBUSY, Errno.ENOMEM), deviceError: fc.boolean() })
      .map((f): Action => ({ kind: "fail", ...f })),
  },
);

describe("next-hop: random walks of MigrationPortal.setState (recording fake backend)", () => {
  it("holds the FSM invariants", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...FLAG_SETS),
        fc.array(actionArb, { maxLength: 40 }),
        async (flags, actions) => {
          const backend = new FakeMigrationBackend({ flags, precopyBytes: new Uint8Array(8) });
          const portal = new MigrationPortal({ migration: backend });
          const supported = new Set<number>(supportedStates(flags));
          const handles: DataSession[] = [];
          assert.equal(portal.getState(), RUNNING);
          for (const a of actions) {
            if (a.kind === "fail") {
              backend.failNext.push({ errno: a.errno, deviceError: a.deviceError });
              continue;
            }
            if (a.kind === "reset") {
              const resets = backend.resets;
              await portal.reset();
              assert.equal(portal.getState(), RUNNING, "reset → RUNNING");
              assert.equal(backend.resets, resets + 1);
              assert.equal(portal.session, undefined);
              for (const h of handles) assert.equal(h.alive, false, "reset kills every session");
              continue;
            }
            const before = portal.getState();
            const tried = backend.attempted.length;
            const failed = backend.applied.length;
            const r = await portal.setState(a.target);
            const attempts = backend.attempted.slice(tried);
            const failure = backend.applied.slice(failed);
            const after = portal.getState();

            // The arcs form one contiguous path of primitive arcs between supported states.
            let at = before;
            attempts.forEach(([f, t], i) => {
              assert.equal(f, at, "contiguous path");
              const arc = findArc(f, t);
              assert.ok(
                arc && supported.has(f) && supported.has(t),
                `arc ${f}→${t} exists for flags ${flags}`,
              );
              if (arc.createsSession) assert.equal(i, attempts.length - 1, "session-creating arc only last");
              at = t;
            });
            assert.ok(failure.length <= 1, "a SET stops at its first failing arc");
            if (failure.length === 1) {
              const last = attempts.at(-1)!;
              assert.deepEqual(
                [failure[0]!.from, failure[0]!.to],
                [last[0], last[1]],
                "only the last arc may fail",
              );
            }

            if (r.ok) {
              assert.equal(after, a.target);
              const want = oraclePath(before, a.target, flags);
              assert.notEqual(want, "EINVAL");
              assert.deepEqual(
                attempts.map(([, t]) => t),
                want,
                "the path walked is the oracle's",
              );
              const last = attempts.at(-1);
              const creates = last !== undefined && findArc(last[0], last[1])!.createsSession;
              assert.equal(r.session !== undefined, creates, "a session iff the last arc creates one");
              if (r.session) handles.push(r.session);
            } else {
              assert.equal(r.reachedState, after);
              if (failure.length === 0) {
                assert.equal(r.errno, Errno.EINVAL);
                assert.equal(attempts.length, 0, "EINVAL before any arc");
                assert.equal(after, before);
                assert.equal(oraclePath(before, a.target, flags), "EINVAL");
              } else {
                assert.equal(r.errno, failure[0]!.failure.errno);
              }
            }
            // ERROR only through a failing arc that said so; otherwise always a supported state.
            if (after === ERROR) {
              const viaFailure = failure.length === 1 && failure[0]!.failure.deviceError;
              assert.ok(viaFailure || before === ERROR, "ERROR only via a failing arc");
            } else {
              assert.ok(supported.has(after), `state ${after} supported`);
              assert.ok(!(failure.length === 1 && failure[0]!.failure.deviceError), "deviceError → ERROR");
            }
            // A live session exactly in the session states.
            const s = portal.session;
            const inSaving = after === STOP_COPY || after === PRE_COPY || after === PRE_COPY_P2P;
            assert.equal(s?.kind, inSaving ? "saving" : after === RESUMING ? "resuming" : undefined);
            for (const h of handles)
              if (h !== s) assert.equal(h.alive, false, "only the current session lives");
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
