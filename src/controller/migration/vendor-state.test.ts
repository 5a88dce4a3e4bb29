/**
 * The written-out vendor state parser against the zod schema that defines the format: on valid states
 * and on states with one field changed, removed or added, both accept the same inputs and produce the
 * same value.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  decodeVendorState,
  encodeVendorState,
  parseVendorState,
  VENDOR_STATE_FORMAT,
  VENDOR_STATE_VERSION,
  type VendorState,
  vendorStateSchema,
} from "./vendor-state.ts";

const valid: VendorState = {
  format: VENDOR_STATE_FORMAT,
  version: VENDOR_STATE_VERSION,
  identity: { serial: "S1", model: "M", subnqn: "nqn.x", vid: 0x1d1d, cntlid: 3 },
  registers: { cc: 0x460001, csts: 1, aqa: 0x1f001f, asq: 0x1000, acq: 0x2000, intms: 0 },
  adminQueue: { sqHead: 4, sqTail: 5, cqHead: 4, cqTail: 5, cqPhase: 1 },
  resources: { maxIoQueuePairs: 64, msixVectors: 65 },
  features: {
    arbitration: 7,
    powerManagement: 0,
    temperatureThresholds: { "0": 343, "16": 0 },
    errorRecovery: 0,
    volatileWriteCache: 1,
    numberOfQueues: 0x3f003f,
    interruptCoalescing: 0,
    interruptVectorConfig: { "1": 0x10001 },
    writeAtomicity: 0,
    asyncEventConfig: 0x100,
  },
  asyncEvents: {
    outstanding: [7],
    pending: [{ type: 2, info: 1, logPage: 3 }],
    maskedTypes: [1],
    errorCount: "12",
  },
  dbbuf: { shadowIova: 0x3000, eventIdxIova: 0x4000 },
  cqOverflow: { "2": [{ dw0: 1, dw1: 2, sqid: 2, cid: 9, status: 0 }] },
  namespaces: { attached: [1], changed: [] },
  stats: { hostReadCommands: 5, hostWriteCommands: 6, dataUnitsReadBytes: 4096, dataUnitsWrittenBytes: 512 },
  suspendNotified: false,
  pciFunction: { format: "nvmig.pci.function", version: 1 },
};

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Paths to every value in `v` (objects and arrays included). */
function paths(v: Json, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [at];
  if (Array.isArray(v)) for (const [i, x] of v.entries()) out.push(...paths(x, [...at, i]));
  else if (v !== null && typeof v === "object")
    for (const k of Object.keys(v)) out.push(...paths(v[k]!, [...at, k]));
  return out;
}

type Edit = { kind: "set"; value: Json } | { kind: "delete" } | { kind: "add"; key: string; value: Json };

function edited(base: Json, path: (string | number)[], e: Edit): Json {
  const copy = structuredClone(base) as Json;
  if (path.length === 0) return e.kind === "set" ? e.value : copy;
  let parent = copy as Record<string | number, Json>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, Json>;
  const last = path[path.length - 1]!;
  if (e.kind === "set") parent[last] = e.value;
  else if (e.kind === "delete") {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete parent[last];
  } else {
    const target = parent[last];
    if (target !== null && typeof target === "object" && !Array.isArray(target)) target[e.key] = e.value;
  }
  return copy;
}

const interesting: Json[] = [
  -1,
  0,
  1,
  2,
  7,
  8,
  255,
  256,
  0x7fff,
  0x8000,
  0xffff,
  0x10000,
  0xffffffff,
  2 ** 32,
  2 ** 53,
  1.5,
  "",
  "12",
  "x",
  null,
  true,
  false,
  [],
  [1],
  {},
  { a: 1 },
];

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({
    kind: fc.constant("set" as const),
    value: fc.oneof(fc.constantFrom(...interesting), fc.jsonValue() as fc.Arbitrary<Json>),
  }),
  fc.constant({ kind: "delete" as const }),
  fc.record({
    kind: fc.constant("add" as const),
    key: fc.string({ maxLength: 6 }),
    value: fc.constantFrom(...interesting),
  }),
);

function agree(x: unknown): void {
  const mine = parseVendorState(x);
  const schema = vendorStateSchema.safeParse(x);
  assert.equal(
    mine.ok,
    schema.success,
    `${JSON.stringify(x)}: parser ${mine.ok ? "accepts" : `refuses (${mine.path}: ${mine.message})`}`,
  );
  if (mine.ok && schema.success) assert.deepEqual(mine.value, schema.data);
}

test("a valid state: both accept it and give the same value", () => {
  agree(valid);
  agree({ ...valid, adminQueue: null, dbbuf: null, pciFunction: null });
});

test("property: one field changed, removed or added — the parser and the schema agree", () => {
  const all = paths(valid as unknown as Json);
  fc.assert(
    fc.property(fc.constantFrom(...all), edit, (path, e) => {
      agree(edited(valid as unknown as Json, path, e));
    }),
    { numRuns: 3000 },
  );
});

test("decodeVendorState: refusals name the field", () => {
  const bad = encodeVendorState({ ...valid, registers: { ...valid.registers, cc: -1 } });
  const r = decodeVendorState(bad);
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.reason, /registers\.cc/);
  const round = decodeVendorState(encodeVendorState(valid));
  assert.ok(round.ok);
  if (round.ok) assert.deepEqual(round.value, valid);
});
