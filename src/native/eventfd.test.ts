import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import {
  addonPath,
  close,
  EFD_SEMAPHORE,
  eventfd,
  eventfdRead,
  eventfdWrite,
  loadAddon,
  nativeStats,
  socketpair,
  unwatch,
  updateWatch,
  type WatchEvents,
  watch,
} from "./addon.ts";

describe("eventfd", () => {
  it("adds writes into a counter that a read takes and resets; -1 when empty", () => {
    const fd = eventfd(2);
    assert.equal(eventfdWrite(fd), true);
    assert.equal(eventfdWrite(fd, 10n), true);
    assert.equal(eventfdRead(fd), 13n);
    assert.equal(eventfdRead(fd), -1);
    close(fd);
  });

  it("in semaphore mode, each read takes 1", () => {
    assert.equal(EFD_SEMAPHORE, loadAddon().EFD_SEMAPHORE);
    const fd = eventfd(2, EFD_SEMAPHORE);
    assert.equal(eventfdRead(fd), 1n);
    assert.equal(eventfdRead(fd), 1n);
    assert.equal(eventfdRead(fd), -1);
    close(fd);
  });

  it("reports a write that would overflow the counter as false (EAGAIN)", () => {
    const fd = eventfd();
    assert.equal(eventfdWrite(fd, 0xffff_ffff_ffff_fffen), true);
    assert.equal(eventfdWrite(fd, 1n), false);
    close(fd);
  });
});

describe("watch (uv_poll on Node's loop)", () => {
  it("fires when an eventfd becomes readable, and not again once it is drained", async () => {
    const fd = eventfd();
    const baseline = nativeStats().watches;
    const seen: WatchEvents[] = [];
    let wake: () => void = () => {};
    const handle = watch(fd, "r", (events) => {
      seen.push(events);
      assert.equal(eventfdRead(fd), 3n);
      wake();
    });
    assert.equal(nativeStats().watches, baseline + 1);
    await nextTurn();
    assert.equal(seen.length, 0, "fired before the eventfd was signalled");
    const fired = new Promise<void>((resolve) => {
      wake = resolve;
    });
    eventfdWrite(fd, 3n);
    await fired;
    for (let i = 0; i < 3; i++) await nextTurn();
    assert.deepEqual(seen, [{ readable: true, writable: false, errno: 0 }]);
    assert.equal(unwatch(handle), true);
    assert.equal(unwatch(handle), false);
    assert.equal(updateWatch(handle, "r"), false);
    assert.equal(nativeStats().watches, baseline);
    close(fd);
  });

  it("can be paused, resumed, switched to writability, and ended inside its own callback", async () => {
    const [a, b] = socketpair();
    const events: string[] = [];
    let done: () => void = () => {};
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    const handle = watch(a, "", (e) => {
      events.push(`${e.readable ? "r" : ""}${e.writable ? "w" : ""}`);
      unwatch(handle); // level-triggered: without this it would fire on every loop turn
      done();
    });
    await nextTurn();
    assert.deepEqual(events, []);
    assert.equal(updateWatch(handle, "w"), true); // an empty socket buffer is writable at once
    await finished;
    assert.deepEqual(events, ["w"]);
    close(a);
    close(b);
  });

  it("lets a worker thread end with watches open or closing (no call into an unloaded addon)", () => {
    // A worker unloads its addons after its cleanup; close callbacks left for later would crash.
    // One worker is terminated; the other ends by itself once its only watch is unref'd.
    const worker = `
      const { parentPort, workerData } = require("node:worker_threads");
      const m = require(${JSON.stringify(addonPath)});
      const open = m.watch(m.eventfd(0, 0), m.WATCH_READABLE, () => {});
      const closing = m.watch(m.eventfd(0, 0), m.WATCH_READABLE, () => {});
      m.unwatch(closing);
      if (workerData.endByItself) m.watchRef(open, false);
      parentPort.postMessage("ready");
    `;
    const main = `
      const { Worker } = require("node:worker_threads");
      let ended = 0;
      for (const endByItself of [false, true]) {
        const w = new Worker(${JSON.stringify(worker)}, { eval: true, workerData: { endByItself } });
        w.on("message", () => { if (!endByItself) w.terminate(); });
        w.on("exit", () => { if (++ended === 2) console.log("both workers ended"); });
      }
    `;
    const result = spawnSync(process.execPath, ["-e", main], { encoding: "utf8", timeout: 20_000 });
    assert.equal(result.signal, null, `crashed: ${result.stderr}`);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /both workers ended/);
  });
});
