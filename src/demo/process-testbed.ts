/**
 * Hosts and VMs as real child processes on loopback — the demo's and the fault tests' testbed:
 * `nvmig host --config` per host (sockets + gRPC agent on a UNIX socket), `nvmig vm --attach
 * --control` for the VM, all through `bin/nvmig.mjs`, each with its own log file in `dir`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { VmControlClient } from "../vmm/vm-control.ts";

const BIN = fileURLToPath(new URL("../../bin/nvmig.mjs", import.meta.url));

export interface ProcessHandle {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly log: string;
  readonly exited: Promise<number | null>;
  /** SIGKILL (kill -9). */
  kill9(): void;
}

export interface HostHandle extends ProcessHandle {
  readonly config: string;
  readonly socketDir: string;
  readonly agentSocket: string;
}

export interface VmHandle extends ProcessHandle {
  readonly control: string;
}

function spawnLogged(name: string, args: string[], log: string, stdoutFile?: string): ProcessHandle {
  const errFd = openSync(log, "a");
  // stdout starts empty: a restarted process must not be taken as ready by its predecessor's line.
  const outFd = stdoutFile === undefined ? errFd : openSync(stdoutFile, "w");
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", outFd, errFd] });
  closeSync(errFd);
  if (outFd !== errFd) closeSync(outFd);
  const exited = once(proc, "exit").then(([code]) => code as number | null);
  return { name, proc, log, exited, kill9: () => proc.kill("SIGKILL") };
}

async function waitFor(
  what: string,
  cond: () => boolean,
  timeoutMs: number,
  dead?: Promise<unknown>,
): Promise<void> {
  let gone = false;
  void dead?.then(() => {
    gone = true;
  });
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (gone) throw new Error(`${what}: the process exited`);
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface HostSpec {
  name: string;
  /** "shared": every host's namespace 1 is the same file; "local": one file per host. */
  storage: "shared" | "local";
  namespaceBytes: number;
  ioQueuePairs?: number;
}

/** Writes the host's config and starts `nvmig host`; resolves when it printed its ready line. */
export async function startHost(dir: string, spec: HostSpec): Promise<HostHandle> {
  const socketDir = join(dir, spec.name);
  mkdirSync(socketDir, { recursive: true });
  const agentSocket = join(socketDir, "control.sock");
  const nsPath = spec.storage === "shared" ? join(dir, "shared-ns1.img") : join(socketDir, "ns1.img");
  const config = join(dir, `${spec.name}.json`);
  writeFileSync(
    config,
    JSON.stringify(
      {
        name: spec.name,
        socketDir,
        namespaces: [
          { nsid: 1, backend: "file", path: nsPath, lbaBytes: 4096, sizeBytes: spec.namespaceBytes },
        ],
        vfs: 1,
        onlineVfs: [{ vfn: 1, ioQueuePairs: spec.ioQueuePairs ?? 2 }],
        storage: spec.storage,
        control: { unixSocket: agentSocket },
      },
      null,
      2,
    ),
  );
  const ready = join(dir, `${spec.name}.ready`);
  const h = spawnLogged(spec.name, ["host", "--config", config], join(dir, `${spec.name}.log`), ready);
  await waitFor(
    `host ${spec.name} ready`,
    () => existsSync(ready) && readFileSync(ready, "utf8").includes('"ready"'),
    60_000,
    h.exited,
  );
  return { ...h, config, socketDir, agentSocket };
}

export interface VmSpec {
  name: string;
  attach: string;
  memoryMib?: number;
  queues?: number;
  queueDepth?: number;
  lbaCount?: number;
  seed?: number;
}

/** Starts `nvmig vm` with a control socket; resolves when the control socket answers. */
export async function startVm(dir: string, spec: VmSpec): Promise<VmHandle> {
  const control = join(dir, `${spec.name}.control`);
  const h = spawnLogged(
    spec.name,
    [
      "vm",
      "--attach",
      spec.attach,
      "--control",
      control,
      "--json",
      "--memory-mib",
      String(spec.memoryMib ?? 16),
      "--queues",
      String(spec.queues ?? 2),
      "--queue-depth",
      String(spec.queueDepth ?? 8),
      "--lba-count",
      String(spec.lbaCount ?? 2048),
      "--seed",
      String(spec.seed ?? 1),
    ],
    join(dir, `${spec.name}.log`),
    join(dir, `${spec.name}.out`),
  );
  await waitFor(`VM ${spec.name} control socket`, () => existsSync(control), 60_000, h.exited);
  const c = await VmControlClient.connect(control);
  for (let i = 0; ; i++) {
    const r = await c.request("describe");
    if (r.ok === true) break;
    if (i > 200) throw new Error(`VM ${spec.name} does not answer`);
    await new Promise((res) => setTimeout(res, 25));
  }
  c.close();
  return { ...h, control };
}

/** Ends the VM's workload (control `stop`), waits for its exit, and returns its result line. */
export async function stopVm(
  control: string,
  outFile: string,
  exited?: Promise<unknown>,
): Promise<Record<string, unknown>> {
  const c = await VmControlClient.connect(control);
  await c.request("stop");
  c.close();
  await waitFor(
    "the VM's result",
    () => existsSync(outFile) && readFileSync(outFile, "utf8").trim().length > 0,
    60_000,
  );
  await exited;
  const lines = readFileSync(outFile, "utf8").trim().split("\n");
  return JSON.parse(lines.at(-1)!) as Record<string, unknown>;
}
