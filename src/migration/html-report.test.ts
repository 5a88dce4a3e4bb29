import assert from "node:assert/strict";
import { test } from "node:test";
import { renderHtmlReport, timelineSvg } from "./html-report.ts";
import type { MigrationReport } from "./report.ts";

const report: MigrationReport = {
  path: "in-band",
  result: "completed",
  functionLabel: "vf1",
  storage: "shared",
  profile: "tp4159",
  maxDowntimeMs: 300,
  converged: true,
  totalMs: 100,
  downtimeMs: 10,
  deviceDowntimeMs: 8,
  downtime: {
    vcpuPauseMs: 0.1,
    deviceStopMs: 2,
    deviceDataMs: 1,
    finalRamMs: 1,
    deviceResumeMs: 3,
    vcpuStartMs: 0.5,
  },
  stateBytes: 8000,
  precopyIterations: 1,
  bytesTransferred: 1 << 20,
  ramBytesTransferred: 1 << 20,
  deviceBytesTransferred: 8000,
  namespaceBytesTransferred: 0,
  iterations: [
    {
      index: 0,
      startMs: 5,
      durationMs: 50,
      ramPages: 256,
      ramBytes: 1 << 20,
      cpuDirtyPages: 0,
      deviceDirtyPages: 0,
      deviceBytes: 10,
      dirtyRatePagesPerSec: 0,
      bandwidthBytesPerMs: 1000,
      expectedDowntimeMs: 1,
    },
  ],
  phases: [
    { phase: "setup", atMs: 0 },
    { phase: "precopy", atMs: 5 },
    { phase: "vcpus-paused", atMs: 80 },
    { phase: "vcpus-running", atMs: 90 },
    { phase: "completed", atMs: 100 },
  ],
};

test("HTML report: self-contained page with a timeline SVG per migration and escaped text", () => {
  const html = renderHtmlReport("t <&>", [
    report,
    { ...report, path: "out-of-band", error: { code: "x", phase: "y", message: "<script>" } },
  ]);
  assert.match(html, /^<!doctype html>/);
  assert.equal((html.match(/<svg /g) ?? []).length, 4);
  assert.ok(html.includes("t &#60;&#38;&#62;"));
  assert.ok(!html.includes("<script>"));
  assert.ok(!/src=|href=/.test(html), "no external resources");
});

test("timeline marks the downtime window", () => {
  const svg = timelineSvg(report);
  assert.match(svg, /downtime 10\.00 ms/);
  assert.equal((svg.match(/<rect /g) ?? []).length >= 5, true);
});
