import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { close, eventfd, eventfdRead, unwatch, watch } from "./addon.ts";
import { GuestMemoryFd } from "./guest-memory-fd.ts";
import { UnixListener } from "./unix-listener.ts";
import { closeAll } from "./unix-socket.ts";

const dir = mkdtempSync(join(tmpdir(), "nvmig-native-child-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("fd passing to another process", () => {
  it("a child receives a memfd and an eventfd over a UNIX socket, writes the memory and rings", {
    timeout: 30_000,
  }, async () => {
    const path = join(dir, "child.sock");
    const listener = UnixListener.listen(path);
    const childScript = fileURLToPath(new URL("./fixtures/fd-child.ts", import.meta.url));
    const child = spawn(process.execPath, ["--import", "tsx", childScript, path], {
      stdio: ["ignore", "inherit", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = once(child, "exit");
    // Anything the test waits for also ends when the child dies, so a crash fails fast.
    const unlessChildDies = <T>(wait: Promise<T>): Promise<T> =>
      Promise.race([
        wait,
        exited.then(([code, signal]) => {
          throw new Error(`child exited early (code ${code}, signal ${signal}): ${stderr}`);
        }),
      ]);
    try {
      const socket = await unlessChildDies(listener.accept());
      assert.ok(socket !== null);
      const ram = GuestMemoryFd.create("guest-ram", 1 << 20);
      const doorbell = eventfd();
      const rang = new Promise<bigint>((resolve) => {
        const handle = watch(doorbell, "r", () => {
          const value = eventfdRead(doorbell);
          if (value === -1) return;
          unwatch(handle);
          resolve(value);
        });
      });

      const offset = 0x1_2345; // not page-aligned on purpose
      const length = 5000;
      const seed = 17;
      const payload = Buffer.alloc(9);
      payload.writeUInt32LE(offset, 0);
      payload.writeUInt32LE(length, 4);
      payload.writeUInt8(seed, 8);
      const header = Buffer.alloc(16);
      header.writeUInt16LE(1, 2);
      header.writeUInt32LE(16 + payload.length, 4);
      socket.write([header, payload], [ram.fd, doorbell]);

      assert.equal(await unlessChildDies(rang), 1n);
      const bytes = ram.bytes();
      for (let i = 0; i < length; i++) assert.equal(bytes[offset + i], (seed + i) & 0xff, `byte ${i}`);
      assert.equal(bytes[offset - 1], 0);
      assert.equal(bytes[offset + length], 0);

      const reply = await unlessChildDies(socket.readMessage(16, (h) => h.readUInt32LE(4) - 16));
      assert.equal(reply.kind, "message", stderr);
      if (reply.kind !== "message") return;
      assert.equal(reply.header.readUInt16LE(2), 2);
      assert.equal(reply.fds.length, 1);
      const text = reply.payload.toString();
      assert.match(text, /^hello from child \d+$/);
      const copy = Buffer.alloc(reply.payload.length);
      readSync(reply.fds[0]!, copy, 0, copy.length, 0);
      assert.equal(copy.toString(), text);

      closeAll(reply.fds);
      socket.close(); // the child waits for this hang-up, then exits 0
      ram.close();
      close(doorbell);
      const [code, signal] = await exited;
      assert.equal(signal, null, stderr);
      assert.equal(code, 0, stderr);
    } finally {
      listener.close();
      if (child.exitCode === null && child.signalCode === null) child.kill();
    }
  });
});
