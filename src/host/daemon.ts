/**
 * `nvmig host --config FILE`: one host as a long-running process. It builds the NVMe subsystem
 * (namespaces, PF driven by the host's own driver, VFs), brings the configured VFs online, exports
 * every function on its own vfio-user socket and optionally serves the gRPC control plane; then it
 * runs until SIGTERM or SIGINT.
 *
 *   runHostDaemon                      host                               outside
 *     | load + validate config (daemon-config.ts)
 *     | open namespace stores, HostNode.start (PF driver up), enable `vfs` VFs
 *     | bringUpVf for each onlineVfs entry
 *     | per VF: migration portal (NVMe variant driver) + export <socketDir>/vf<N>.sock ◄── VMMs (QEMU, nvmig vm)
 *     | PF: export <socketDir>/pf.sock, read-only (the host driver owns the PF)
 *     | [control] HostAgent + gRPC server (unix and/or tcp) ◄──────────────────── orchestrator
 *     | stdout: {"ready":true,"name":…,"sockets":{"pf":…,"vf1":…},"control":{…}|null}
 *     | … SIGTERM / SIGINT …
 *     | close exports (socket files removed), control server, agent, PF driver, stores → resolve 0
 *
 * Output: exactly one JSON line on stdout (the ready line). Logs are JSON lines on stderr: export
 * and vfio-user events of level warn/error plus client attach/detach, and the control plane's own log.
 * A second signal during shutdown exits at once with 130 (SIGINT) / 143 (SIGTERM).
 *
 * Failures before ready (bad config, a socket path in use, a store that cannot open) undo what was
 * started and reject with the cause (the CLI prints one line and exits 1).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { allowAll } from "../control/authz.ts";
import { readTlsFiles } from "../control/certs.ts";
import { type ControlServer, createControlServer } from "../control/server.ts";
import type { NvmeFunction } from "../controller/nvme-function.ts";
import type { BlockStore } from "../storage/block-store.ts";
import { openFileBlockStore } from "../storage/file-block-store.ts";
import { createMemoryBlockStore } from "../storage/memory-block-store.ts";
import type { VfioUserEvent } from "../vfio-user/events.ts";
import { createHostAgent, type HostAgent } from "./agent/index.ts";
import { type HostConfig, loadHostConfig } from "./daemon-config.ts";
import { HostNode } from "./host-node.ts";
import {
  createVfPortal,
  type ExportFunctionOptions,
  type ExportLogEntry,
  exportNvmeFunction,
  type FunctionExport,
} from "./vfio-user-export.ts";

export interface HostDaemonOptions {
  /** Path of the configuration file (see daemon-config.ts). Required. */
  config: string;
}

/** What the ready line reports. */
export interface HostDaemonReady {
  ready: true;
  name: string;
  /** Socket path per exported function: "pf", "vf1", "vf2", … */
  sockets: Record<string, string>;
  control: { unixSocket?: string; tcp?: { host: string; port: number } } | null;
}

export interface HostDaemonHooks {
  /** Stops the daemon like SIGTERM (in-process use). Default: only signals stop it. */
  stop?: AbortSignal;
  /** Writes the ready line. Default: `process.stdout`. */
  writeReady?: (line: string) => void;
  /** Writes one log line. Default: `process.stderr`. */
  writeLog?: (line: string) => void;
  /** Handle SIGTERM / SIGINT. Default true. */
  handleSignals?: boolean;
}

/** A running daemon (what `startHostDaemon` returns). */
export interface HostDaemon {
  readonly config: HostConfig;
  readonly node: HostNode;
  readonly ready: HostDaemonReady;
  readonly exports: readonly FunctionExport[];
  /** Stops everything started; idempotent. */
  stop(): Promise<void>;
}

/** Resources in start order, released in reverse. */
class Teardown {
  #steps: { what: string; run: () => void | Promise<void> }[] = [];
  add(what: string, run: () => void | Promise<void>): void {
    this.#steps.push({ what, run });
  }
  async run(log: (line: string) => void): Promise<void> {
    const steps = this.#steps.splice(0).reverse();
    for (const s of steps) {
      try {
        await s.run();
      } catch (e) {
        log(JSON.stringify({ event: "host.shutdown-step-failed", step: s.what, error: String(e) }));
      }
    }
  }
}

function exportLogLine(host: string, e: ExportLogEntry): string | undefined {
  const ev = e.event;
  const lifecycle =
    ev.name === "client-attached" || ev.name === "client-detached" || ev.name === "client-rejected";
  if (ev.level === "info" && !lifecycle) return undefined;
  return JSON.stringify({ host, fn: e.fn, source: e.source, ...(ev as VfioUserEvent) });
}

function openStore(ns: HostConfig["namespaces"][number]): BlockStore {
  const lbaCount = ns.sizeBytes / ns.lbaBytes;
  if (ns.backend === "memory") return createMemoryBlockStore({ lbaBytes: ns.lbaBytes, lbaCount });
  return openFileBlockStore({ path: ns.path!, lbaBytes: ns.lbaBytes, lbaCount, create: true });
}

/** Starts everything the configuration names and returns once it is ready (no signal handling). */
export async function startHostDaemon(
  config: HostConfig,
  hooks: Pick<HostDaemonHooks, "writeLog"> = {},
): Promise<HostDaemon> {
  const writeLog = hooks.writeLog ?? ((line: string) => process.stderr.write(`${line}\n`));
  const teardown = new Teardown();
  try {
    const namespaces = config.namespaces.map((ns) => {
      const store = openStore(ns);
      teardown.add(`store ${ns.nsid}`, () => store.close());
      return { nsid: ns.nsid, store };
    });
    // The VQ / VI flexible pools hold 9 resources per secondary controller: enough secondaries for
    // every online VF's queues (+ admin queue) and interrupts.
    const demand = config.onlineVfs.reduce((n, v) => n + v.ioQueuePairs + 1, 0);
    const secondaryCount = Math.max(1, config.vfs, Math.ceil(demand / 9));
    const node = await HostNode.start({ name: config.name, namespaces, secondaryCount, vfs: config.vfs });
    teardown.add("PF driver", () => node.stop());
    for (const v of config.onlineVfs) await node.bringUpVf(v.vfn, v.ioQueuePairs);

    mkdirSync(config.socketDir, { recursive: true, mode: 0o755 });
    const socketMode = Number.parseInt(config.socketMode, 8);
    const exports: FunctionExport[] = [];
    const sockets: Record<string, string> = {};
    const onLog = (e: ExportLogEntry): void => {
      const line = exportLogLine(config.name, e);
      if (line !== undefined) writeLog(line);
    };
    const exportOne = (
      label: string,
      fn: NvmeFunction,
      extra: Pick<ExportFunctionOptions, "access" | "portal">,
    ): void => {
      const path = join(config.socketDir, `${label}.sock`);
      const exp = exportNvmeFunction(fn, {
        ...extra,
        path,
        label,
        listen: { socketMode, replaceExisting: true },
        onLog,
      });
      teardown.add(`export ${label}`, () => exp.close());
      exports.push(exp);
      sockets[label] = path;
    };
    exportOne("pf", node.subsystem.pf, { access: "observe" });
    for (let vfn = 1; vfn <= config.vfs; vfn++) {
      let portal: Awaited<ReturnType<typeof createVfPortal>> | undefined;
      try {
        portal = await createVfPortal(node, vfn, {
          storage: config.storage,
          profile: config.profile,
          label: `${config.name}/vf${vfn}`,
        });
      } catch (e) {
        writeLog(
          JSON.stringify({
            host: config.name,
            fn: `vf${vfn}`,
            event: "portal-unavailable",
            error: String(e),
          }),
        );
      }
      exportOne(`vf${vfn}`, node.vf(vfn), portal === undefined ? {} : { portal });
    }

    let control: HostDaemonReady["control"] = null;
    if (config.control !== undefined) {
      const c = config.control;
      const agent: HostAgent = await createHostAgent(node);
      teardown.add("agent", () => agent.close());
      const authz =
        c.authz === undefined
          ? allowAll(config.name, ["local", "orchestrator"])
          : { host: config.name, rules: c.authz.rules };
      const listen: Parameters<typeof createControlServer>[0]["listen"] = {};
      if (c.unixSocket !== undefined) listen.unix = { path: c.unixSocket };
      if (c.tcp !== undefined) {
        const t = c.tcp;
        if (t.insecure) {
          listen.tcp = { host: t.host, port: t.port, insecure: true };
        } else {
          const server = (t.tlsServerName ?? t.host).replaceAll(":", "_");
          const tls = readTlsFiles({
            ca: join(t.tlsDir!, "ca.crt"),
            cert: join(t.tlsDir!, `server-${server}.crt`),
            key: join(t.tlsDir!, `server-${server}.key`),
          });
          listen.tcp = { host: t.host, port: t.port, tls };
        }
      }
      const server: ControlServer = await createControlServer({ backend: agent, listen, authz });
      teardown.add("control server", () => server.close(1000));
      control = {
        ...(server.unixPath === undefined ? {} : { unixSocket: server.unixPath }),
        ...(server.tcp === undefined ? {} : { tcp: server.tcp }),
      };
    }

    const ready: HostDaemonReady = { ready: true, name: config.name, sockets, control };
    let stopped: Promise<void> | undefined;
    return {
      config,
      node,
      ready,
      exports,
      stop: () => {
        stopped ??= teardown.run(writeLog);
        return stopped;
      },
    };
  } catch (e) {
    await teardown.run(writeLog);
    throw e;
  }
}

/**
 * The `nvmig host` entry point: loads the configuration, starts, prints the ready line, runs until
 * SIGTERM / SIGINT (or `hooks.stop`), shuts down cleanly and resolves 0.
 */
export async function runHostDaemon(opts: HostDaemonOptions, hooks: HostDaemonHooks = {}): Promise<number> {
  const config = loadHostConfig(opts.config);
  const writeLog = hooks.writeLog ?? ((line: string) => process.stderr.write(`${line}\n`));
  const writeReady = hooks.writeReady ?? ((line: string) => process.stdout.write(`${line}\n`));
  const handleSignals = hooks.handleSignals ?? true;

  // Signals that arrive while starting are honoured once the start finished.
  let requested: string | undefined;
  let wake: (() => void) | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (requested !== undefined) {
      writeLog(JSON.stringify({ host: config.name, event: "host.forced-exit", signal: sig }));
      process.exit(sig === "SIGINT" ? 130 : 143);
    }
    requested = sig;
    wake?.();
  };
  if (handleSignals) {
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  }
  const onAbort = (): void => {
    requested ??= "abort";
    wake?.();
  };
  hooks.stop?.addEventListener("abort", onAbort, { once: true });
  try {
    const daemon = await startHostDaemon(config, { writeLog });
    if (hooks.stop?.aborted === true) requested ??= "abort";
    if (requested === undefined) {
      writeReady(JSON.stringify(daemon.ready));
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (requested !== undefined) resolve();
      });
    }
    writeLog(JSON.stringify({ host: config.name, event: "host.stopping", reason: requested }));
    await daemon.stop();
    writeLog(JSON.stringify({ host: config.name, event: "host.stopped" }));
    return 0;
  } finally {
    hooks.stop?.removeEventListener("abort", onAbort);
    if (handleSignals) {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
    }
  }
}
