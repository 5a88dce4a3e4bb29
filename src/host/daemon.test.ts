import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { connectControl } from "../control/client.ts";
import { VfioUserClient } from "../vfio-user/client.ts";
import { VfioUserError } from "../vfio-user/errors.ts";
import { DeviceInfoFlag, Errno, RegionIndex } from "../vfio-user/protocol/constants.ts";
import { SocketTransport } from "../vfio-user/socket-transport.ts";
import type { HostDaemonReady } from "./daemon.ts";
import { HostConfigError, loadHostConfig, parseHostConfig } from "./daemon-config.ts";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const daemonUrl = pathToFileURL(fileURLToPath(new URL("./daemon.ts", import.meta.url))).href;

/** Spawns `runHostDaemon` in a child process (as `nvmig host --config FILE` does). */
function spawnDaemon(configPath: string): ChildProcess {
  const code = `import(${JSON.stringify(daemonUrl)}).then((m) => m.runHostDaemon({ config: ${JSON.stringify(configPath)} })).then((rc) => { process.exitCode = rc; }, (e) => { console.error(String(e)); process.exitCode = 1; });`;
  return spawn(process.execPath, ["--import", "tsx", "-e", code], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** Resolves with the first stdout line (the ready line); rejects if the child exits first. */
function readyLine(child: ChildProcess, stderr: string[], deadlineMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(
      () => reject(new Error(`no ready line in ${deadlineMs} ms; stderr: ${stderr.join("")}`)),
      deadlineMs,
    );
    child.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      const nl = out.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited (${code}) before ready; stderr: ${stderr.join("")}`));
    });
  });
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
}

describe("host daemon configuration", () => {
  it("accepts the shape scripts/qemu/run-vfio-user-test.sh writes and fills in every default", () => {
    const c = parseHostConfig({
      socketDir: "/tmp/x/vfio-user",
      namespaces: [{ nsid: 1, backend: "memory", lbaBytes: 512, sizeBytes: 67108864 }],
      vfs: 1,
      onlineVfs: [{ vfn: 1, ioQueuePairs: 4 }],
    });
    assert.equal(c.name, "host");
    assert.equal(c.socketMode, "0600");
    assert.equal(c.storage, "local");
    assert.equal(c.profile, "tp4159");
    assert.equal(c.control, undefined);
    assert.equal(parseHostConfig({ socketDir: "/s", namespaces: c.namespaces }).vfs, 4);
  });

  it("refuses bad configurations with every problem named", () => {
    const bad = (value: unknown, ...fragments: string[]) => {
      assert.throws(
        () => parseHostConfig(value),
        (e: unknown) => {
          assert.ok(e instanceof HostConfigError);
          assert.equal(e.code, "invalid");
          for (const f of fragments) assert.ok(e.message.includes(f), `${e.message} should mention ${f}`);
          return true;
        },
      );
    };
    const ns = { nsid: 1, backend: "memory", lbaBytes: 512, sizeBytes: 1 << 20 };
    bad({ namespaces: [ns] }, "socketDir");
    bad({ socketDir: "/s", namespaces: [{ ...ns, sizeBytes: 1000 }] }, "namespaces.0.sizeBytes");
    bad({ socketDir: "/s", namespaces: [{ ...ns, backend: "file" }] }, "namespaces.0.path");
    bad({ socketDir: "/s", namespaces: [ns, ns] }, "namespaces.1.nsid: duplicate");
    bad({ socketDir: "/s", namespaces: [ns], vfs: 1, onlineVfs: [{ vfn: 2 }] }, "onlineVfs.0.vfn");
    bad({ socketDir: "/s", namespaces: [ns], onlineVfs: [{ vfn: 1, ioQueuePairs: 65 }] }, "ioQueuePairs");
    bad({ socketDir: "/s", namespaces: [ns], control: {} }, "control");
    bad({ socketDir: "/s", namespaces: [ns], control: { tcp: { port: 1 } } }, "tlsDir");
    bad({ socketDir: "/s", namespaces: [ns], sockDir: "/t" }, "sockDir");
    bad({ socketDir: "/s", namespaces: [{ ...ns, lbaBytes: 1024 }] }, "lbaBytes");
  });

  it("reports an unreadable or non-JSON file", () => {
    const dir = mkdtempSync(join(tmpdir(), "nvmig-cfg-"));
    try {
      assert.throws(() => loadHostConfig(join(dir, "missing.json")), {
        name: "HostConfigError",
        code: "unreadable",
      });
      const p = join(dir, "bad.json");
      writeFileSync(p, "{ nope");
      assert.throws(() => loadHostConfig(p), { name: "HostConfigError", code: "not-json" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("host daemon process", () => {
  const dir = mkdtempSync(join(tmpdir(), "nvmig-daemon-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("starts, exports PF and VF sockets plus the control socket, serves vfio-user, and exits 0 on SIGTERM", async () => {
    const socketDir = join(dir, "vfio-user");
    const controlSocket = join(dir, "control.sock");
    const configPath = join(dir, "host.json");
    writeFileSync(
      configPath,
      JSON.stringify({
        name: "host-t",
        socketDir,
        namespaces: [{ nsid: 1, backend: "memory", lbaBytes: 512, sizeBytes: 8 << 20 }],
        vfs: 2,
        onlineVfs: [{ vfn: 1, ioQueuePairs: 2 }],
        control: { unixSocket: controlSocket },
      }),
    );
    const child = spawnDaemon(configPath);
    const stderr: string[] = [];
    child.stderr!.on("data", (b: Buffer) => stderr.push(b.toString()));
    try {
      const ready = JSON.parse(await readyLine(child, stderr)) as HostDaemonReady;
      assert.equal(ready.ready, true);
      assert.equal(ready.name, "host-t");
      assert.deepEqual(ready.sockets, {
        pf: join(socketDir, "pf.sock"),
        vf1: join(socketDir, "vf1.sock"),
        vf2: join(socketDir, "vf2.sock"),
      });
      assert.deepEqual(ready.control, { unixSocket: controlSocket });
      for (const p of Object.values(ready.sockets)) {
        assert.ok(statSync(p).isSocket(), p);
        assert.equal(statSync(p).mode & 0o777, 0o600);
      }

      const vf = await VfioUserClient.connect(SocketTransport.connect(ready.sockets.vf1!));
      assert.equal(vf.serverVersion.major, 0);
      assert.deepEqual(await vf.deviceGetInfo(), {
        flags: DeviceInfoFlag.PCI | DeviceInfoFlag.RESET,
        numRegions: 9,
        numIrqs: 5,
      });
      vf.close();

      // The PF socket is a read-only view: config reads work, DMA maps are refused.
      const pf = await VfioUserClient.connect(SocketTransport.connect(ready.sockets.pf!));
      const id = await pf.regionRead(RegionIndex.CONFIG, 0, 4);
      assert.equal(new DataView(id.buffer, id.byteOffset).getUint16(0, true), 0x1d1d);
      await assert.rejects(pf.dmaMap({ iova: 0, sizeBytes: 4096 }), (e: unknown) => {
        assert.ok(e instanceof VfioUserError);
        assert.equal(e.errno, Errno.EPERM);
        return true;
      });
      pf.close();

      const control = connectControl({ target: `unix:${controlSocket}` });
      try {
        const fns = await control.listFunctions();
        assert.ok(fns.length >= 2, "PF and VFs are listed by the agent");
      } finally {
        control.close();
      }

      child.kill("SIGTERM");
      const exit = await exitOf(child);
      assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${stderr.join("")}`);
      for (const p of [...Object.values(ready.sockets), controlSocket]) assert.equal(existsSync(p), false, p);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exitOf(child);
    }
  });

  it("exits with an error line and status 1 for an invalid configuration", async () => {
    const configPath = join(dir, "invalid.json");
    writeFileSync(configPath, JSON.stringify({ namespaces: [] }));
    const child = spawnDaemon(configPath);
    const stderr: string[] = [];
    child.stderr!.on("data", (b: Buffer) => stderr.push(b.toString()));
    const exit = await exitOf(child);
    assert.equal(exit.code, 1);
    assert.match(stderr.join(""), /socketDir/);
  });
});
