import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { ControlError } from "./errors.ts";
import { waitForDrain, writeAll } from "./stream-write.ts";

/** An object-mode Writable that completes one write per macrotask and records its peak backlog. */
function slowSink(highWaterMark: number): Writable & { received: number[]; peakBacklog: number } {
  const sink = new Writable({
    objectMode: true,
    highWaterMark,
    write(chunk: number, _enc, done) {
      sink.received.push(chunk);
      setImmediate(done);
    },
  }) as Writable & { received: number[]; peakBacklog: number };
  sink.received = [];
  sink.peakBacklog = 0;
  const write = sink.write.bind(sink);
  sink.write = ((chunk: number) => {
    const ok = write(chunk);
    sink.peakBacklog = Math.max(sink.peakBacklog, sink.writableLength);
    return ok;
  }) as typeof sink.write;
  return sink;
}

test("writeAll waits for drain: the backlog never exceeds the high-water mark", async () => {
  const sink = slowSink(4);
  const produced: number[] = [];
  async function* source(): AsyncGenerator<number> {
    for (let i = 0; i < 200; i++) {
      produced.push(i);
      yield i;
    }
  }
  assert.equal(await writeAll(sink, source()), 200);
  await new Promise<void>((r) => sink.end(r));
  assert.deepEqual(sink.received, produced);
  assert.ok(sink.peakBacklog <= 4, `peak backlog ${sink.peakBacklog}`);
});

test("without waiting, the same producer would pile everything up (the check above can fail)", () => {
  const sink = slowSink(4);
  for (let i = 0; i < 200; i++) sink.write(i);
  assert.ok(sink.peakBacklog > 100);
  sink.destroy();
});

test("waitForDrain rejects when the stream closes or the signal fires, and closes the producer", async () => {
  const closing = slowSink(1);
  closing.write(1);
  const pending = waitForDrain(closing);
  closing.destroy();
  await assert.rejects(pending, (e: unknown) => ControlError.is(e, "cancelled"));

  const sink = slowSink(1);
  const controller = new AbortController();
  let finalized = false;
  async function* endless(): AsyncGenerator<number> {
    try {
      for (let i = 0; ; i++) yield i;
    } finally {
      finalized = true;
    }
  }
  sink.write = (() => false) as typeof sink.write;
  const writing = writeAll(sink, endless(), controller.signal);
  controller.abort();
  await assert.rejects(writing, (e: unknown) => ControlError.is(e, "cancelled"));
  assert.equal(finalized, true);
  await assert.rejects(waitForDrain(sink, controller.signal), (e: unknown) =>
    ControlError.is(e, "cancelled"),
  );
});
