/**
 * `nvmig migrate` as users run it, between `nvmig host` daemon processes (shared storage: one namespace file
 * both hosts open) and an `nvmig vm` process: out of band A → B,
 * then in band B → A, each a `nvmig migrate --json` child process; the VM then verifies the whole run.
 * Also: a bad function name is refused with a clear message and exit 1, and the VM keeps running.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type HostHandle, startHost, startVm, stopVm, type VmHandle } from "../../demo/process-testbed.ts";
import { VmControlClient } from "../../vmm/vm-control.ts";

const BIN = fileURLToPath(new URL("../../../bin/nvmig.mjs", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "nvmig-migrate-cmd-"));
const procs: (HostHandle | VmHandle)[] = [];
after(async () => {
  for (const p of procs) p.kill9();
  rmSync(dir, { recursive: true, force: true });
});

async function nvmig(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  p.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  p.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const [code] = (await once(p, "exit")) as [number | null];
  return { code, stdout, stderr };
}

async function role(control: string): Promise<string> {
  const c = await VmControlClient.connect(control);
  const r = await c.request("describe");
  c.close();
  return String(r.role);
}

test("nvmig migrate: out of band A → B, in band B → A between host and VM processes, shared storage, zero loss", {
  timeout: 180_000,
}, async () => {
  const [a, b] = await Promise.all([
    startHost(dir, { name: "host-a", storage: "shared", namespaceBytes: 8 << 20 }),
    startHost(dir, { name: "host-b", storage: "shared", namespaceBytes: 8 << 20 }),
  ]);
  procs.push(a, b);
  const vm = await startVm(dir, {
    name: "vm1",
    attach: join(a.socketDir, "vf1.sock"),
    memoryMib: 8,
    lbaCount: 1024,
  });
  procs.push(vm);

  const bad = await nvmig([
    "migrate",
    "--from",
    a.config,
    "--to",
    b.config,
    "--function",
    "vf9",
    "--vm",
    vm.control,
    "--json",
  ]);
  assert.equal(bad.code, 1);
  assert.match(
    bad.stderr,
    /nvmig migrate: invalid-argument in setup: destination host host-b exports no .*vf9\.sock/,
  );
  assert.equal(await role(vm.control), "running", "a refused migration changes nothing");

  const onB = join(dir, "vm1-b.control");
  const first = await nvmig([
    "migrate",
    "--from",
    a.config,
    "--to",
    b.config,
    "--function",
    "vf1",
    "--vm",
    vm.control,
    "--path",
    "out-of-band",
    "--max-downtime-ms",
    "300",
    "--json",
    "--dest-control",
    onB,
  ]);
  assert.equal(first.code, 0, first.stderr);
  const r1 = JSON.parse(first.stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
  assert.equal(r1.result, "completed");
  assert.equal(r1.path, "out-of-band");
  assert.match(first.stderr, /"event":"migration.phase","fn":"vf1","kind":"phase","phase":"vcpus-paused"/);
  assert.equal(await vm.exited, 0, "the source VMM hands the guest over and exits");
  assert.equal(await role(onB), "running");

  const onA = join(dir, "vm1-a.control");
  const second = await nvmig([
    "migrate",
    "--from",
    b.config,
    "--to",
    a.config,
    "--function",
    "vf1",
    "--vm",
    onB,
    "--path",
    "in-band",
    "--json",
    "--dest-control",
    onA,
  ]);
  assert.equal(second.code, 0, second.stderr);
  const r2 = JSON.parse(second.stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
  assert.equal(r2.result, "completed");
  assert.equal(r2.path, "in-band");
  assert.equal(await role(onA), "running");

  const r = await stopVm(onA, `${onA}.out`);
  assert.equal(r.verified, true, JSON.stringify(r));
  assert.equal(r.lostWrites, 0);
  assert.equal(r.badReads, 0);
  assert.equal(r.duplicateCompletions, 0);
  assert.equal(r.missingCompletions, 0);
  assert.ok(Number(r.ops) > 0);
});
