/**
 * The VM control channel over a real UNIX socket with recording handlers: every command, request
 * ordering, and the failure replies (bad JSON, missing cmd, unknown command, bad fields, handler
 * failure, over-long line).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  startVmControl,
  VM_CONTROL_PROTOCOL,
  VmControlClient,
  type VmControlHandlers,
} from "./vm-control.ts";

const dir = mkdtempSync(join(tmpdir(), "nvmig-vm-control-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function handlers(calls: string[]): VmControlHandlers {
  return {
    pageBytes: 4096,
    pause: () => calls.push("pause"),
    resume: () => calls.push("resume"),
    stats: () => ({ ops: 42 }),
    startDirtyLog: () => calls.push("startDirtyLog"),
    collectDirty: () => [3, 1, 2],
    stopDirtyLog: () => calls.push("stopDirtyLog"),
    readPages: (pages) => {
      if (pages.some((p) => p > 9)) throw new RangeError("page outside guest RAM");
      const out = new Uint8Array(pages.length * 4096);
      for (const [i, p] of pages.entries()) out.fill(p, i * 4096, (i + 1) * 4096);
      return out;
    },
    retarget: async (socket) => {
      await new Promise((r) => setTimeout(r, 20));
      if (socket === "/nowhere") throw new Error("cannot connect");
      calls.push(`retarget ${socket}`);
    },
    stop: () => calls.push("stop"),
  };
}

/** Sends raw bytes and collects reply lines until `lines` arrived or the socket closed. */
function raw(path: string, text: string, lines: number): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path, () => s.write(text));
    let buf = "";
    const done = () =>
      resolve(
        buf
          .trim()
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      );
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      buf += d;
      if (buf.split("\n").length > lines) {
        s.destroy();
        done();
      }
    });
    s.on("close", done);
    s.on("error", reject);
  });
}

describe("VM control channel", () => {
  it("serves every command in order, replies carrying the request id", async () => {
    const calls: string[] = [];
    const path = join(dir, "a.sock");
    const server = await startVmControl(path, handlers(calls));
    const client = await VmControlClient.connect(path);
    try {
      assert.equal(statSync(path).mode & 0o777, 0o600);
      const hello = await client.request("hello");
      assert.equal(hello.ok, true);
      assert.equal(hello.protocol, VM_CONTROL_PROTOCOL);
      assert.ok((hello.commands as string[]).includes("retarget"));
      // Pipelined: a slow retarget still answers before the resume queued behind it runs.
      const replies = await Promise.all([
        client.request("pause"),
        client.request("retarget", { socket: "/run/dst.sock" }),
        client.request("resume"),
        client.request("stats"),
        client.request("startDirtyLog"),
        client.request("collectDirty"),
        client.request("readPages", { pages: [7, 2] }),
        client.request("stopDirtyLog"),
        client.request("stop"),
      ]);
      assert.ok(
        replies.every((r) => r.ok === true),
        JSON.stringify(replies),
      );
      assert.deepEqual(calls, [
        "pause",
        "retarget /run/dst.sock",
        "resume",
        "startDirtyLog",
        "stopDirtyLog",
        "stop",
      ]);
      assert.deepEqual(replies[3]!.stats, { ops: 42 });
      assert.deepEqual(replies[5]!.pages, [3, 1, 2]);
      const data = Buffer.from(replies[6]!.data as string, "base64");
      assert.equal(data.byteLength, 8192);
      assert.equal(data[0], 7);
      assert.equal(data[4096], 2);
      assert.equal(replies[6]!.pageBytes, 4096);
    } finally {
      client.close();
      await server.close();
    }
  });

  it("answers mistakes with error codes and keeps serving", async () => {
    const path = join(dir, "b.sock");
    const server = await startVmControl(path, handlers([]), { maxLineBytes: 1024 });
    try {
      const r = await raw(
        path,
        [
          "not json",
          '{"id":1}',
          '{"id":2,"cmd":"warp"}',
          '{"id":3,"cmd":"readPages","pages":"all"}',
          '{"id":4,"cmd":"readPages","pages":[99]}',
          '{"id":5,"cmd":"retarget"}',
          '{"id":6,"cmd":"retarget","socket":"/nowhere"}',
          '{"id":7,"cmd":"pause"}',
          "",
        ].join("\n"),
        8,
      );
      assert.deepEqual(
        r.map((x) => [x.id, x.ok, x.error]),
        [
          [null, false, "bad-request"],
          [1, false, "bad-request"],
          [2, false, "unknown-command"],
          [3, false, "bad-request"],
          [4, false, "bad-request"],
          [5, false, "bad-request"],
          [6, false, "failed"],
          [7, true, undefined],
        ],
      );
      const long = await raw(path, `{"id":1,"cmd":"hello","pad":"${"x".repeat(2000)}`, 1);
      assert.equal(long[0]!.error, "bad-request");
    } finally {
      await server.close();
    }
  });
});
