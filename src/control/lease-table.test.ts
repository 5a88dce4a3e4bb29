import assert from "node:assert/strict";
import { test } from "node:test";
import type { LeaseInfo } from "./backend.ts";
import { ControlError } from "./errors.ts";
import { LeaseTable } from "./lease-table.ts";

function setup() {
  const clock = {
    t: 1_000_000,
    nowMs() {
      return this.t;
    },
  };
  const expired: LeaseInfo[] = [];
  let n = 0;
  const table = new LeaseTable({
    clock,
    defaultLeaseMs: 10_000,
    minLeaseMs: 1_000,
    maxLeaseMs: 60_000,
    newLeaseId: () => `lease-${++n}`,
    onExpired: (l) => expired.push(l),
  });
  return { clock, table, expired };
}

test("acquire grants the default, clamps durations and refuses a second holder", () => {
  const { clock, table } = setup();
  const a = table.acquire({ cntlid: 1, holder: "orch", leaseMs: 0, description: "m1" });
  assert.deepEqual(a, {
    leaseId: "lease-1",
    cntlid: 1,
    holder: "orch",
    description: "m1",
    leaseMs: 10_000,
    expiresAtUnixMs: clock.t + 10_000,
  });
  assert.equal(table.acquire({ cntlid: 2, holder: "orch", leaseMs: 5, description: "" }).leaseMs, 1_000);
  assert.equal(table.acquire({ cntlid: 3, holder: "orch", leaseMs: 1e9, description: "" }).leaseMs, 60_000);
  assert.throws(
    () => table.acquire({ cntlid: 1, holder: "other", leaseMs: 0, description: "" }),
    (e: unknown) => ControlError.is(e, "failed-precondition") && /leased by orch/.test(e.message),
  );
  assert.throws(
    () => table.acquire({ cntlid: 4, holder: "o", leaseMs: -1, description: "" }),
    (e: unknown) => ControlError.is(e, "invalid-argument"),
  );
});

test("renew extends from now; wrong id, wrong holder and no lease are distinct errors", () => {
  const { clock, table } = setup();
  const a = table.acquire({ cntlid: 1, holder: "orch", leaseMs: 5_000, description: "" });
  clock.t += 4_000;
  const r = table.renew({ cntlid: 1, leaseId: a.leaseId, holder: "orch", leaseMs: 0 });
  assert.equal(r.expiresAtUnixMs, clock.t + 5_000);
  assert.throws(
    () => table.renew({ cntlid: 1, leaseId: "x", holder: "orch", leaseMs: 0 }),
    (e: unknown) => ControlError.is(e, "failed-precondition"),
  );
  assert.throws(
    () => table.renew({ cntlid: 1, leaseId: a.leaseId, holder: "eve", leaseMs: 0 }),
    (e: unknown) => ControlError.is(e, "permission-denied"),
  );
  assert.throws(
    () => table.release({ cntlid: 9, leaseId: a.leaseId, holder: "orch" }),
    (e: unknown) => ControlError.is(e, "not-found"),
  );
  table.release({ cntlid: 1, leaseId: a.leaseId, holder: "orch" });
  assert.equal(table.get(1), undefined);
});

test("a lease expires exactly at expiresAtUnixMs: sweep removes it and calls onExpired once", () => {
  const { clock, table, expired } = setup();
  const a = table.acquire({ cntlid: 7, holder: "orch", leaseMs: 2_000, description: "" });
  table.acquire({ cntlid: 8, holder: "orch", leaseMs: 3_000, description: "" });
  assert.equal(table.nextExpiryAtMs(), a.expiresAtUnixMs);
  clock.t = a.expiresAtUnixMs - 1;
  assert.deepEqual(table.sweep(), []);
  clock.t = a.expiresAtUnixMs;
  assert.deepEqual(
    table.sweep().map((l) => l.cntlid),
    [7],
  );
  assert.deepEqual(
    expired.map((l) => l.leaseId),
    [a.leaseId],
  );
  assert.equal(table.nextExpiryAtMs(), a.expiresAtUnixMs + 1_000);
  // Every operation sweeps first: the expired function is free again and renew says not-found.
  assert.throws(
    () => table.renew({ cntlid: 7, leaseId: a.leaseId, holder: "orch", leaseMs: 0 }),
    (e: unknown) => ControlError.is(e, "not-found"),
  );
  clock.t += 10_000;
  assert.equal(table.acquire({ cntlid: 8, holder: "next", leaseMs: 0, description: "" }).holder, "next");
  assert.deepEqual(
    expired.map((l) => l.cntlid),
    [7, 8],
  );
  assert.equal(table.check(8, "lease-3").holder, "next");
});
