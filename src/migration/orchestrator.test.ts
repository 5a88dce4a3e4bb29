/**
 * The orchestrator against scripted endpoints: convergence when pre-copy iterations find nothing to
 * send, and the order of the downtime steps (RAM found dirty at the pause goes before the device
 * stops; what the device wrote until its suspend goes after).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { MigState } from "../vfio/states.ts";
import type { DeviceEndpoint, VmDestination, VmSource } from "./endpoints.ts";
import { migrate } from "./orchestrator.ts";

const PAGE = 4096;
const RAM_BYTES = 16 * PAGE;

function setup() {
  const log: string[] = [];
  let sourceState: number = MigState.RUNNING;
  let streamSent = false;
  let cpuDirtyAtPause: number[] = [];
  const setBit = (bitmap: Uint8Array, page: number) => {
    bitmap[page >> 3]! |= 1 << (page & 7);
  };
  const source: DeviceEndpoint = {
    migrationFlags: async () => 1 | 4,
    setState: async (t) => {
      log.push(`source ${t}`);
      sourceState = t;
      return { ok: true };
    },
    readData: async () => {
      if (sourceState !== MigState.STOP_COPY) return { ok: false, errno: 42 };
      if (streamSent) return { ok: true, bytes: new Uint8Array(0) };
      streamSent = true;
      return { ok: true, bytes: new Uint8Array(100) };
    },
    writeData: async () => ({ ok: true }),
    precopyInfo: async () => ({ ok: true, initialBytes: 0n, dirtyBytes: 0n }),
    dataSize: async () => ({ ok: true, stopCopyLength: 1000n }),
    dmaLoggingStart: async () => ({ ok: true }),
    // The device writes page 5 while running after the pause, and page 6 until its suspend.
    dmaLoggingReport: async (_i, _l, _p, bitmap) => {
      if (log.includes("vcpus paused") && !log.some((l) => l.startsWith("dma report at pause"))) {
        log.push("dma report at pause");
        setBit(bitmap, 5);
      } else if (sourceState === MigState.STOP_COPY) {
        log.push("dma report after stop");
        setBit(bitmap, 6);
      }
      return { ok: true };
    },
    dmaLoggingStop: async () => ({ ok: true }),
    reset: async () => {},
  };
  const destination: DeviceEndpoint = {
    ...source,
    setState: async (t) => {
      log.push(`destination ${t}`);
      return { ok: true };
    },
    writeData: async () => ({ ok: true }),
  };
  const vm: VmSource = {
    ramBytes: RAM_BYTES,
    startDirtyLog: () => {},
    collectDirty: () => {
      const d = Uint32Array.from(cpuDirtyAtPause);
      cpuDirtyAtPause = [];
      return d;
    },
    dirtyPageCount: () => 0,
    stopDirtyLog: () => {},
    page: (p) => new Uint8Array(PAGE).fill(p),
    pauseVcpus: async () => {
      log.push("vcpus paused");
      cpuDirtyAtPause = [1];
    },
    resumeVcpus: () => {},
  };
  const ram = new Uint8Array(RAM_BYTES);
  const dest: VmDestination = {
    writePages: async (pages, bytes) => {
      if (log.includes("vcpus paused")) log.push(`pages ${pages.join(",")}`);
      for (const [i, p] of pages.entries()) ram.set(bytes[i]!, p * PAGE);
    },
    start: async () => {
      log.push("vcpus started");
    },
    discard: async () => {},
  };
  return { log, source, destination, vm, dest, ram };
}

test("pre-copy converges when an iteration has nothing to send (bandwidth from the iterations that did)", async () => {
  const s = setup();
  const r = await migrate({
    source: { device: s.source, vm: s.vm },
    destination: { device: s.destination, vm: s.dest },
    maxDowntimeMs: 50,
  });
  assert.equal(r.result, "completed", JSON.stringify(r.error));
  assert.equal(r.converged, true);
  assert.equal(r.precopyIterations, 2);
  assert.equal(r.iterations[1]!.ramPages, 0);
  // Every page reached the destination with its content.
  for (let p = 0; p < 16; p++) assert.equal(s.ram[p * PAGE], p, `page ${p}`);
});

test("downtime order: dirty RAM at the pause goes before the device stops, the device's last pages after", async () => {
  const s = setup();
  const r = await migrate({
    source: { device: s.source, vm: s.vm },
    destination: { device: s.destination, vm: s.dest },
    maxDowntimeMs: 50,
  });
  assert.equal(r.result, "completed", JSON.stringify(r.error));
  const from = s.log.indexOf("vcpus paused");
  assert.deepEqual(s.log.slice(from), [
    "vcpus paused",
    "dma report at pause",
    "pages 1,5",
    `source ${MigState.STOP_COPY}`,
    "dma report after stop",
    "pages 6",
    `destination ${MigState.RUNNING}`,
    "vcpus started",
    `source ${MigState.STOP}`,
  ]);
  assert.ok(r.deviceDowntimeMs <= r.downtimeMs);
  assert.equal(r.stateBytes, 100);
});
