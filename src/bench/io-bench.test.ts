import assert from "node:assert/strict";
import { test } from "node:test";
import { IO_BENCH_CASES, runIoBench } from "./io-bench.ts";

test("runIoBench (tiny): every case runs, figures are positive, headlines name their cases", async () => {
  const seen: string[] = [];
  const r = await runIoBench({
    durationMs: 20,
    warmupMs: 0,
    workingSetBytes: 1 << 20,
    rssVfs: 2,
    onCase: (c) => seen.push(c.name),
  });
  assert.deepEqual(
    seen,
    IO_BENCH_CASES.map((c) => c.name),
  );
  for (const key of [
    "randread4kQd128Iops",
    "randwrite4kQd128Iops",
    "randread4kQd1Iops",
    "seqread128kGiBps",
    "memcpyGiBps",
    "rssMiB64Vfs",
  ] as const) {
    const v = r[key];
    assert.ok(typeof v === "number" && Number.isFinite(v) && v > 0, `${key} = ${v}`);
  }
  assert.equal(r.verify, false);
  assert.equal(r.cases.length, IO_BENCH_CASES.length);
  for (const c of r.cases) {
    assert.equal(c.verify, false);
    assert.equal(c.errors, 0, `${c.name}: no I/O errors`);
    assert.ok(c.ops > 0 && c.iops > 0 && c.gibPerSecond > 0 && c.cpuMs > 0, `${c.name} figures`);
    assert.equal(c.queueDepthPerQueue * c.queuePairs, c.queueDepth);
    if (c.completionMode === "polling") assert.equal(c.interruptsPerOp, 0, `${c.name}: no interrupts`);
    else assert.ok(c.interruptsPerOp > 0, `${c.name}: completions came by interrupt`);
  }
  assert.equal(r.headlineCases.randread4kQd128Iops.startsWith("randread-4k-qd128-"), true);
  assert.equal(r.headlineCases.seqread128kGiBps.startsWith("seqread-128k-"), true);
  const rr = r.cases.find((c) => c.name === r.headlineCases.randread4kQd128Iops)!;
  assert.equal(r.randread4kQd128Iops, rr.iops);
  assert.ok(r.memcpy.block4kCopiesPerSecond > 0 && r.memcpy.block4kGiBps > 0);
  // RSS child: two VFs, four idle I/O queue pairs each, after a GC.
  assert.ok(r.rss !== undefined);
  assert.equal(r.rss.vfs, 2);
  assert.equal(r.rss.ioQueuePairsPerVf, 4);
  assert.equal(r.rss.gcRan, true);
  assert.ok(r.rss.rssBytes >= r.rss.heapUsedBytes);
  assert.ok(JSON.parse(JSON.stringify(r)), "the result is plain JSON");
});

test("runIoBench: unknown case names and bad options are refused", async () => {
  await assert.rejects(runIoBench({ cases: ["no-such-case"], rss: false }), /unknown case/);
  await assert.rejects(runIoBench({ durationMs: 1, rss: false }), /durationMs/);
  await assert.rejects(runIoBench({ workingSetBytes: 12345, rss: false }), /workingSetBytes/);
});
