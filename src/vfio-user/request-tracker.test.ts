import assert from "node:assert/strict";
import { test } from "node:test";
import { VfioUserError } from "./errors.ts";
import { Command, Errno } from "./protocol/constants.ts";
import { RequestTracker } from "./request-tracker.ts";

const header = (id: number, command: number, flags = 1, errno = 0) => ({
  id,
  command,
  sizeBytes: 16,
  flags,
  errno,
});

test("ids are unique among requests in flight and matched by id and command", async () => {
  const t = new RequestTracker(0);
  const ids: number[] = [];
  const a = t.start(Command.DMA_READ, (id) => ids.push(id));
  const b = t.start(Command.DMA_WRITE, (id) => ids.push(id));
  assert.notEqual(ids[0], ids[1]);
  assert.equal(
    t.settle({ header: header(ids[0]!, Command.DMA_WRITE), payload: new Uint8Array(0), fds: [] }),
    false,
  );
  assert.equal(
    t.settle({ header: header(0x1234, Command.DMA_READ), payload: new Uint8Array(0), fds: [] }),
    false,
  );
  assert.equal(
    t.settle({ header: header(ids[1]!, Command.DMA_WRITE), payload: Uint8Array.of(7), fds: [] }),
    true,
  );
  assert.deepEqual([...(await b).payload], [7]);
  assert.equal(
    t.settle({
      header: header(ids[0]!, Command.DMA_READ, 0x21, Errno.EFAULT),
      payload: new Uint8Array(0),
      fds: [],
    }),
    true,
  );
  await assert.rejects(
    a,
    (e: unknown) => e instanceof VfioUserError && e.code === "remote-error" && e.errno === Errno.EFAULT,
  );
  assert.equal(t.size, 0);
});

test("an id still in flight is skipped when the counter wraps", () => {
  const t = new RequestTracker(0);
  let first = -1;
  t.start(1, (id) => {
    first = id;
  }).catch(() => undefined);
  const seen = new Set<number>();
  for (let i = 0; i < 0x10000 - 1; i++) {
    let last = -1;
    void t.start(1, (id) => {
      last = id;
    });
    seen.add(last);
    t.settle({ header: header(last, 1), payload: new Uint8Array(0), fds: [] });
  }
  assert.ok(!seen.has(first), "the in-flight id was never reused");
  assert.equal(seen.size, 0xffff, "every other id was used once");
  t.failAll(() => new VfioUserError("disconnected", "test", { errno: Errno.ECONNRESET }));
});

test("timeout and failAll settle once and run onError", async () => {
  let errors = 0;
  const t = new RequestTracker(10, () => errors++);
  const p = t.start(1, () => undefined, { onError: () => errors++ });
  await assert.rejects(p, (e: unknown) => e instanceof VfioUserError && e.code === "timeout");
  assert.equal(errors, 2);
  const q = t.start(2, () => undefined);
  t.failAll(() => new VfioUserError("disconnected", "gone", { errno: Errno.ECONNRESET }));
  await assert.rejects(q, (e: unknown) => e instanceof VfioUserError && e.code === "disconnected");
  assert.equal(t.size, 0);
});
