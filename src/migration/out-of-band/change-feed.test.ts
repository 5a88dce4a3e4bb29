/**
 * AgentChangeFeed over a scripted changed-LBA stream (an in-memory stand-in for the agent's gRPC
 * stream; the real stream is covered by out-of-band.test.ts and the agent's tests): ranges reach the
 * logs, the end is only the end entry, and a broken stream makes every block count as changed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ChangedLbaRange } from "../../control/backend.ts";
import type { CallOptions } from "../../control/client.ts";
import { LbaChangeLog } from "../../storage/lba-change-log.ts";
import { AgentChangeFeed } from "./change-feed.ts";

const LBA_COUNT = 4096;

function range(slba: number, blocks: number, entrySequence: ChangedLbaRange["entrySequence"] = "none") {
  return {
    nsid: 1,
    slba: BigInt(slba),
    nlb: blocks - 1,
    entrySequence,
    changeInfo: "range-valid",
    deallocated: false,
  } satisfies ChangedLbaRange;
}

const SUSPENDED: ChangedLbaRange = {
  nsid: 0,
  slba: 0n,
  nlb: 0,
  entrySequence: "last-suspended",
  changeInfo: "no-range",
  deallocated: false,
};

/** A stream the test feeds batch by batch; `end()` closes it, `fail()` errors it. */
class ScriptedStream {
  private readonly batches: ChangedLbaRange[][] = [];
  private wake: (() => void) | undefined;
  private closed: "ended" | "failed" | undefined;

  push(batch: ChangedLbaRange[]): void {
    this.batches.push(batch);
    this.wake?.();
  }
  end(): void {
    this.closed = "ended";
    this.wake?.();
  }
  fail(): void {
    this.closed = "failed";
    this.wake?.();
  }

  readonly client = {
    streamChangedLbaRanges: (_cntlid: number, opts?: CallOptions): AsyncIterable<ChangedLbaRange[]> => {
      const self = this;
      return (async function* () {
        for (;;) {
          const b = self.batches.shift();
          if (b !== undefined) {
            yield b;
            continue;
          }
          if (self.closed === "ended" || opts?.signal?.aborted) return;
          if (self.closed === "failed") throw new Error("stream broke");
          await new Promise<void>((r) => {
            self.wake = r;
            opts?.signal?.addEventListener("abort", () => r(), { once: true });
          });
        }
      })();
    },
  };
}

function setup() {
  const stream = new ScriptedStream();
  const log = new LbaChangeLog({ lbaCount: LBA_COUNT, granularityLbas: 1 });
  const feed = new AgentChangeFeed(stream.client, 1, new Map([[1, log]]));
  return { stream, log, feed };
}

const turns = () => new Promise((r) => setTimeout(r, 5));

test("ranges reach the logs; untilEnd waits for the ESA 3 end entry and every range before it", async () => {
  const { stream, log, feed } = setup();
  stream.push([range(8, 8, "first"), range(100, 2)]);
  let ended = false;
  const end = feed.untilEnd().then(() => {
    ended = true;
  });
  await turns();
  assert.equal(ended, false, "no end entry yet");
  stream.push([range(200, 1), SUSPENDED]);
  await end;
  assert.equal(feed.broken, false);
  assert.deepEqual(log.drain(), [
    { slba: 8, nlb: 8 },
    { slba: 100, nlb: 2 },
    { slba: 200, nlb: 1 },
  ]);
  await feed.close();
});

for (const how of ["ends without an end entry", "fails"] as const) {
  test(`a stream that ${how} is broken: every block counts as changed, again after the suspend`, async () => {
    const { stream, log, feed } = setup();
    stream.push([range(8, 8, "first")]);
    if (how === "fails") stream.fail();
    else stream.end();
    await turns();
    assert.equal(feed.broken, true);
    assert.equal(log.pendingLbas(), LBA_COUNT);
    // The session copies everything; writes made after the break were never reported...
    log.drain();
    await feed.untilEnd();
    // ...so after the suspend everything is marked changed once more.
    assert.equal(log.pendingLbas(), LBA_COUNT);
    await feed.close();
  });
}

test("close() (rollback) is not a break: nothing extra is marked", async () => {
  const { stream, log, feed } = setup();
  stream.push([range(8, 8, "first")]);
  await turns();
  await feed.close();
  assert.equal(feed.broken, false);
  assert.deepEqual(log.drain(), [{ slba: 8, nlb: 8 }]);
});
