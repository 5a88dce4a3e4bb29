/**
 * kill -9 fault tests for live migration across processes: two `nvmig host` daemons (shared
 * namespace file), a VM process (`nvmig vm`) on host A's VF1, and one migration A → B at a time.
 * A process is killed with SIGKILL at a given orchestrator phase; afterwards the guest must run on
 * exactly one side (or, where it cannot, on none — stated per case), and the survivor's own verifier
 * (it re-reads every block it wrote when stopped) must report zero loss.
 *
 *   orchestrator killed (the `nvmig migrate` child)   → the VMMs' lease rule decides the side
 *   destination VMM killed (from `onPhase`)           → rollback, the source continues
 *   source / destination host killed mid pre-copy     → rollback, never two sides
 *
 * Every VM uses its own LBA range, so the hosts (and their shared namespace) are reused across cases.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type HostHandle, startHost, stopVm } from "../../demo/process-testbed.ts";
import { VmControlClient } from "../../vmm/vm-control.ts";
import { MIGRATION_PHASES } from "../report.ts";
import { migrateBetweenHosts } from "./between-hosts.ts";

const BIN = fileURLToPath(new URL("../../../bin/nvmig.mjs", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dir = mkdtempSync(join(tmpdir(), "nvmig-fault-"));
let hostA: HostHandle;
let hostB: HostHandle;
/** Every pid this file started (directly or through the orchestrator); SIGKILLed at the end. */
const started = new Set<number>();
let vmCount = 0;
const LBAS_PER_VM = 256;

before(async () => {
  [hostA, hostB] = await Promise.all([
    startHost(dir, { name: "host-a", storage: "shared", namespaceBytes: 64 << 20 }),
    startHost(dir, { name: "host-b", storage: "shared", namespaceBytes: 64 << 20 }),
  ]);
  started.add(hostA.proc.pid!);
  started.add(hostB.proc.pid!);
});

after(async () => {
  for (const pid of started) killPid(pid);
  await sleep(100);
  if (process.env.NVMIG_KEEP_FAULT_DIR === undefined) rmSync(dir, { recursive: true, force: true });
  else console.error(`fault test files kept in ${dir}`);
});

function killPid(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie (exited, not yet reaped) counts as gone.
    return !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ");
  } catch {
    return false;
  }
}

/** Pids whose command line mentions `needle` (the destination VMM's unique control socket path). */
function pidsWith(needle: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0");
      if (cmd.includes(needle) && alive(Number(e))) out.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(25);
  }
  return true;
}

interface Guest {
  name: string;
  control: string;
  out: string;
  pid: number;
  exited: Promise<number | null>;
  hasExited: () => boolean;
}

/** `nvmig vm` on `attach` with 8 MiB RAM and its own LBA range; resolves when `describe` answers. */
async function startGuest(attach: string): Promise<Guest> {
  const n = vmCount++;
  const name = `vm${n}`;
  const control = join(dir, `${name}.control`);
  const out = join(dir, `${name}.out`);
  const errFd = openSync(join(dir, `${name}.log`), "a");
  const outFd = openSync(out, "a");
  const proc = spawn(
    process.execPath,
    [
      BIN,
      "vm",
      "--attach",
      attach,
      "--control",
      control,
      "--json",
      "--memory-mib",
      "8",
      "--queues",
      "2",
      "--queue-depth",
      "8",
      "--lba-first",
      String(n * LBAS_PER_VM),
      "--lba-count",
      String(LBAS_PER_VM),
      "--seed",
      String(n + 1),
    ],
    { stdio: ["ignore", outFd, errFd] },
  );
  closeSync(errFd);
  closeSync(outFd);
  started.add(proc.pid!);
  let done = false;
  const exited = once(proc, "exit").then(([code]) => {
    done = true;
    return code as number | null;
  });
  assert.ok(await until(() => existsSync(control) || done, 30_000), `${name}: no control socket`);
  assert.equal(done, false, `${name} exited at start (see ${name}.log)`);
  for (let i = 0; ; i++) {
    const d = await describe(control);
    if (d !== undefined) break;
    assert.ok(i < 200, `${name} does not answer`);
    await sleep(25);
  }
  await sleep(150); // let the guest write something before the migration starts
  return { name, control, out, pid: proc.pid!, exited, hasExited: () => done };
}

/** The VMM's `describe` reply, or undefined when it does not answer (gone). */
async function describe(control: string): Promise<Record<string, unknown> | undefined> {
  let c: VmControlClient | undefined;
  try {
    c = await VmControlClient.connect(control);
    const r = await Promise.race([c.request("describe"), sleep(3000).then(() => undefined)]);
    return r?.ok === true ? r : undefined;
  } catch {
    return undefined;
  } finally {
    c?.close();
  }
}

type Side = "source" | "destination" | "none";

interface Settled {
  side: Side;
  why: string;
}

/**
 * Waits until the guest runs on exactly one side: the source VMM running (not paused, no migration
 * in progress) and the destination VMM gone, or the source gone / handed over and the destination
 * running. `allowNone`: also settle when neither side runs (the guest was lost with a killed VMM).
 */
async function settle(src: Guest, destControl: string, allowNone = false): Promise<Settled> {
  let last = "";
  const end = Date.now() + 15_000;
  while (Date.now() < end) {
    const s = src.hasExited() ? undefined : await describe(src.control);
    const destPids = pidsWith(destControl);
    const d = destPids.length === 0 ? undefined : await describe(destControl);
    const srcRunning = s?.role === "running" && s.paused === false && s.migrationInProgress === false;
    const srcGone = s === undefined || s.role === "handed-over";
    const dstRunning = d?.role === "running";
    last = `source ${s === undefined ? (src.hasExited() ? "exited" : "silent") : JSON.stringify(s)}; destination pids [${destPids}] ${JSON.stringify(d)}`;
    if (srcRunning && d !== undefined && d.role === "running")
      throw new Error(`the guest runs on both sides: ${last}`);
    if (srcRunning && destPids.length === 0) return { side: "source", why: last };
    if (srcGone && dstRunning) return { side: "destination", why: last };
    if (allowNone && src.hasExited() && destPids.length === 0) return { side: "none", why: last };
    await sleep(50);
  }
  throw new Error(`never settled on exactly one side: ${last}`);
}

/** Stops the surviving guest and asserts its verifier found zero loss. */
async function assertSurvivorVerified(src: Guest, destControl: string, side: Side): Promise<void> {
  let r: Record<string, unknown>;
  if (side === "source") {
    r = await stopVm(src.control, src.out, src.exited);
  } else {
    const [pid] = pidsWith(destControl);
    r = await stopVm(
      destControl,
      `${destControl}.out`,
      until(() => pid === undefined || !alive(pid), 30_000),
    );
    // The handed-over source lets go once its orchestrator is gone.
    assert.ok(await until(src.hasExited, 30_000), "the handed-over source VMM exited");
  }
  assert.equal(r.verified, true, `${side} result: ${JSON.stringify(r)}`);
  assert.equal(r.lostWrites, 0);
  assert.equal(r.badReads, 0);
  assert.equal(r.duplicateCompletions, 0);
  assert.equal(r.missingCompletions, 0);
  assert.ok(Number(r.ops) > 0, "the guest did I/O");
}

/** The destination VMM exits without ever running the guest (its only result line says "discarded"). */
async function assertDestinationNeverRan(destControl: string, outcome: string): Promise<void> {
  assert.ok(
    await until(() => pidsWith(destControl).length === 0, 30_000),
    `${outcome}: the destination VMM exited`,
  );
  const out = existsSync(`${destControl}.out`) ? readFileSync(`${destControl}.out`, "utf8") : "";
  for (const line of out
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))) {
    const r = JSON.parse(line) as { outcome?: string; ops?: number };
    assert.equal(r.outcome, "discarded", `the destination never ran the guest: ${line}`);
    assert.equal(r.ops, 0);
  }
}

const vf1 = (h: HostHandle) => join(h.socketDir, "vf1.sock");

/** After a case, pass or fail: no VMM of it is left holding a VF (the next case needs both). */
async function cleanupCase(src: Guest | undefined, destControl: string): Promise<void> {
  const pids = [...pidsWith(destControl), ...(src === undefined ? [] : [src.pid])];
  for (const pid of pids) killPid(pid);
  await until(() => pids.every((pid) => !alive(pid)), 10_000);
  await sleep(100); // the hosts notice their vfio-user clients went away
}

// ---- 1. the orchestrator (`nvmig migrate`) killed as it enters a phase, in band.
/** Every phase up to the guest running on the destination (the cleanup after it is best effort). */
const ORCHESTRATOR_PHASES = MIGRATION_PHASES.slice(0, MIGRATION_PHASES.indexOf("vcpus-running") + 1);

/**
 * In band at every phase; out of band at a few (the agents' 3 s lease then resumes the source
 * function, or resets a restored destination, after the orchestrator is gone).
 */
const LEASE_MS = 3000;
const ORCHESTRATOR_CASES = [
  ...ORCHESTRATOR_PHASES.map((phase) => ({ phase, path: "in-band" as const })),
  ...(["precopy", "vcpus-paused", "device-stopped", "final-ram-sent"] as const).map((phase) => ({
    phase,
    path: "out-of-band" as const,
  })),
];

for (const { phase, path } of ORCHESTRATOR_CASES) {
  const label = path === "in-band" ? "" : ", out of band";
  test(`kill -9 orchestrator at ${phase}${label}: the guest runs on exactly one side, verified, zero loss`, {
    timeout: 90_000,
  }, async (t) => {
    const destControl = join(dir, `vm${vmCount}-on-b.control`);
    let guest: Guest | undefined;
    t.after(() => cleanupCase(guest, destControl));
    // The dead orchestrator's agent leases must run out before the next case uses the functions
    // (their expiry resumes / resets them).
    if (path === "out-of-band") t.after(() => sleep(LEASE_MS + 1000));
    const src = await startGuest(vf1(hostA));
    guest = src;
    const orch = spawn(
      process.execPath,
      [
        BIN,
        "migrate",
        "--from",
        hostA.config,
        "--to",
        hostB.config,
        "--function",
        "vf1",
        "--vm",
        src.control,
        "--path",
        path,
        "--lease-ms",
        String(LEASE_MS),
        "--json",
        "--dest-control",
        destControl,
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NVMIG_FAULT_STALL_AT_PHASE: phase } },
    );
    started.add(orch.pid!);
    const seen: string[] = [];
    const other: string[] = [];
    let buf = "";
    orch.stderr!.setEncoding("utf8").on("data", (d: string) => {
      buf += d;
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line.startsWith("{")) {
          other.push(line);
          continue;
        }
        const ev = JSON.parse(line) as { event?: string; phase?: string };
        if (ev.event !== "migration.phase" || ev.phase === undefined) continue;
        seen.push(ev.phase);
        if (ev.phase === phase) orch.kill("SIGKILL");
      }
    });
    let stdout = "";
    orch.stdout!.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    // "close", not "exit": every progress line it wrote has been read by then.
    const [code, signal] = (await once(orch, "close")) as [number | null, string | null];
    for (const pid of pidsWith(destControl)) started.add(pid);
    assert.ok(
      seen.includes(phase),
      `the orchestrator reached ${phase} (saw ${seen.join(", ")}; stdout: ${stdout.slice(0, 600)}; stderr: ${other.join(" | ")}; destination VMM log: ${existsSync(`${destControl}.log`) ? readFileSync(`${destControl}.log`, "utf8") : "none"})`,
    );
    assert.equal(signal, "SIGKILL", `killed at ${phase}, not exited by itself (code ${code})`);

    const s = await settle(src, destControl);
    // Before the guest is handed over the source keeps it; after, the destination has it.
    const handedOver = phase === "vcpus-running";
    if (handedOver) assert.equal(s.side, "destination", s.why);
    else if (phase !== "destination-running") assert.equal(s.side, "source", s.why);
    await assertSurvivorVerified(src, destControl, s.side);
    assert.ok(await until(() => pidsWith(destControl).length === 0, 30_000), "no VMM left behind");
  });
}

// ---- 2. the destination VMM killed at a phase (in-process orchestrator, kill from `onPhase`).
const DEST_PHASES = [
  "setup",
  "precopy",
  "converged",
  "device-stopped",
  "final-ram-sent",
  "destination-running",
] as const;

for (const phase of DEST_PHASES) {
  test(`kill -9 destination VMM at ${phase}: rolled back, the source continues, verified, zero loss`, {
    timeout: 90_000,
  }, async (t) => {
    const destControl = join(dir, `vm${vmCount}-on-b.control`);
    let guest: Guest | undefined;
    t.after(() => cleanupCase(guest, destControl));
    const src = await startGuest(vf1(hostA));
    guest = src;
    let destPid: number | undefined;
    let killedAt: string | undefined;
    let outcome: string;
    try {
      const r = await migrateBetweenHosts({
        from: hostA.config,
        to: hostB.config,
        functionId: "vf1",
        vmControl: src.control,
        path: "in-band",
        destControl,
        onDestinationStarted: (pid) => {
          destPid = pid;
          started.add(pid);
        },
        onPhase: async (p) => {
          if (p !== phase || destPid === undefined) return;
          killedAt = p;
          killPid(destPid);
          const pid = destPid;
          await until(() => !alive(pid), 10_000);
        },
      });
      outcome = `${r.report.result} ${JSON.stringify(r.report.error)}`;
      assert.equal(killedAt, phase, `the destination VMM was killed at ${phase}: ${outcome}`);
      assert.equal(r.report.result, "rolled-back", outcome);
    } catch (e) {
      // Past the point of no return (the destination device runs) the orchestrator throws; the source
      // VMM's lease then brings the guest back (the guest state had not been handed over yet).
      outcome = `threw ${(e as Error).message}`;
      assert.equal(phase, "destination-running", `only past the point of no return: ${outcome}`);
    }
    assert.equal(killedAt, phase, `the destination VMM was killed at ${phase}: ${outcome}`);
    const s = await settle(src, destControl);
    assert.equal(s.side, "source", `${outcome}: ${s.why}`);
    await assertSurvivorVerified(src, destControl, "source");
  });
}

test("kill -9 destination VMM at vcpus-running: the guest had moved there and is gone with it; the source does not run it", {
  timeout: 90_000,
}, async (t) => {
  const destControl = join(dir, `vm${vmCount}-on-b.control`);
  let guest: Guest | undefined;
  t.after(() => cleanupCase(guest, destControl));
  const src = await startGuest(vf1(hostA));
  guest = src;
  let destPid: number | undefined;
  const r = await migrateBetweenHosts({
    from: hostA.config,
    to: hostB.config,
    functionId: "vf1",
    vmControl: src.control,
    path: "in-band",
    destControl,
    onDestinationStarted: (pid) => {
      destPid = pid;
      started.add(pid);
    },
    onPhase: async (p) => {
      if (p !== "vcpus-running" || destPid === undefined) return;
      killPid(destPid);
      const pid = destPid;
      await until(() => !alive(pid), 10_000);
    },
  });
  // The guest is on the destination when it dies: the migration itself completed (cleanup is best
  // effort), the source handed the guest over and exits; nobody runs it — never two sides.
  assert.equal(r.report.result, "completed", JSON.stringify(r.report.error));
  const s = await settle(src, destControl, true);
  assert.equal(s.side, "none", s.why);
});

// ---- 3. a host daemon killed at each phase before the destination runs (kill from `onPhase`).
/** Phases before the point of no return (the destination device running). */
const PRE_SWITCHOVER_PHASES = MIGRATION_PHASES.slice(0, MIGRATION_PHASES.indexOf("destination-running"));

for (const phase of PRE_SWITCHOVER_PHASES)
  test(`kill -9 destination host at ${phase}: rolled back, the source continues, verified, zero loss`, {
    timeout: 90_000,
  }, async (t) => {
    const destControl = join(dir, `vm${vmCount}-on-b.control`);
    let guest: Guest | undefined;
    t.after(() => cleanupCase(guest, destControl));
    // Host B again for the next case (same configuration, same shared namespace file).
    t.after(async () => {
      if (alive(hostB.proc.pid!)) return;
      hostB = await startHost(dir, { name: "host-b", storage: "shared", namespaceBytes: 64 << 20 });
      started.add(hostB.proc.pid!);
    });
    const src = await startGuest(vf1(hostA));
    guest = src;
    const r = await migrateBetweenHosts({
      from: hostA.config,
      to: hostB.config,
      functionId: "vf1",
      vmControl: src.control,
      path: "in-band",
      destControl,
      onDestinationStarted: (pid) => started.add(pid),
      onPhase: async (p) => {
        if (p !== phase) return;
        hostB.kill9();
        await hostB.exited;
      },
    });
    assert.equal(r.report.result, "rolled-back", "the migration rolled back");
    const s = await settle(src, destControl);
    assert.equal(s.side, "source", s.why);
    await assertSurvivorVerified(src, destControl, "source");
  });

for (const phase of PRE_SWITCHOVER_PHASES)
  test(`kill -9 source host at ${phase}: the guest runs on one side at most, never two; zero loss where it runs`, {
    timeout: 90_000,
  }, async (t) => {
    const destControl = join(dir, `vm${vmCount}-on-b.control`);
    let guest: Guest | undefined;
    t.after(() => cleanupCase(guest, destControl));
    // Host A again for the next case, whatever happened in this one.
    t.after(async () => {
      if (alive(hostA.proc.pid!)) return;
      hostA = await startHost(dir, { name: "host-a", storage: "shared", namespaceBytes: 64 << 20 });
      started.add(hostA.proc.pid!);
    });
    const src = await startGuest(vf1(hostA));
    guest = src;
    let outcome: string;
    try {
      const r = await migrateBetweenHosts({
        from: hostA.config,
        to: hostB.config,
        functionId: "vf1",
        vmControl: src.control,
        path: "in-band",
        destControl,
        onDestinationStarted: (pid) => started.add(pid),
        onPhase: async (p) => {
          if (p !== phase) return;
          hostA.kill9();
          await hostA.exited;
        },
      });
      outcome = r.report.result;
    } catch (e) {
      outcome = `threw ${(e as Error).message}`;
    }
    if (outcome === "completed") {
      // Everything had moved before the source host died (device state, final RAM): the destination
      // runs the guest, alone, and nothing was lost.
      assert.ok(
        phase === "final-ram-sent" || phase === "device-data-sent",
        `completed after losing the source at ${phase}`,
      );
      const s = await settle(src, destControl);
      assert.equal(s.side, "destination", s.why);
      await assertSurvivorVerified(src, destControl, "destination");
      return;
    }
    await assertDestinationNeverRan(destControl, outcome);
    // The source VM lost its device; whatever it does, it is not running a guest next to a destination.
    const d = src.hasExited() ? undefined : await describe(src.control);
    assert.ok(d === undefined || d.role !== "handed-over", `${outcome}: source ${JSON.stringify(d)}`);
  });

// ---- 4. the source VMM (the guest itself) killed at each phase before the handover: the guest is
// lost with it; the destination must not start anything and gives its function back.
for (const phase of PRE_SWITCHOVER_PHASES)
  test(`kill -9 source VMM at ${phase}: the destination never starts the guest and exits`, {
    timeout: 90_000,
  }, async (t) => {
    const destControl = join(dir, `vm${vmCount}-on-b.control`);
    let guest: Guest | undefined;
    t.after(() => cleanupCase(guest, destControl));
    const src = await startGuest(vf1(hostA));
    guest = src;
    let outcome: string;
    try {
      const r = await migrateBetweenHosts({
        from: hostA.config,
        to: hostB.config,
        functionId: "vf1",
        vmControl: src.control,
        path: "in-band",
        destControl,
        onDestinationStarted: (pid) => started.add(pid),
        onPhase: async (p) => {
          if (p !== phase) return;
          killPid(src.pid);
          await until(src.hasExited, 10_000);
        },
      });
      outcome = r.report.result;
      assert.notEqual(r.report.result, "completed", "no migration without the source VMM");
    } catch (e) {
      outcome = `threw ${(e as Error).message}`;
    }
    await assertDestinationNeverRan(destControl, outcome);
    // Both functions are usable again: the next case starts a VM on A and migrates to B.
  });
