/**
 * Out-of-band migration in one process, over real gRPC: each host of a `TwoHosts` testbed runs its
 * controlling-function agent behind a gRPC server on a UNIX socket (0600), and the orchestrator drives
 * both agents through clients — the device side of the migration never touches the VMM's portal.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { allowAll } from "../../control/authz.ts";
import { type ControlClient, connectControl } from "../../control/client.ts";
import type { ControlLogger } from "../../control/logger.ts";
import { type ControlServer, createControlServer } from "../../control/server.ts";
import { createHostAgent, type HostAgent } from "../../host/agent/index.ts";
import { portalEndpoint } from "../endpoints.ts";
import type { TwoHosts } from "../in-process/two-hosts.ts";
import { inProcessVmDestination, inProcessVmSource } from "../in-process/vm-endpoints.ts";
import { type MigrationOptions, migrate } from "../orchestrator.ts";
import type { MigrationReport } from "../report.ts";
import { agentPortal } from "./agent-backend.ts";

const quiet: ControlLogger = { info: () => {}, warn: () => {}, error: () => {} };

export interface HostControl {
  agent: HostAgent;
  server: ControlServer;
  client: ControlClient;
}

export class TwoHostAgents {
  private constructor(
    readonly t: TwoHosts,
    readonly a: HostControl,
    readonly b: HostControl,
    private readonly dir: string,
  ) {}

  static async start(t: TwoHosts, opts: { logger?: ControlLogger } = {}): Promise<TwoHostAgents> {
    const dir = mkdtempSync(join(tmpdir(), "nvmig-agents-"));
    const one = async (name: string, host: TwoHosts["a"]["host"]): Promise<HostControl> => {
      const agent = await createHostAgent(host, { logger: opts.logger ?? quiet });
      const server = await createControlServer({
        backend: agent,
        authz: allowAll(name, ["local"]),
        logger: opts.logger ?? quiet,
        listen: { unix: { path: join(dir, `${name}.sock`) } },
      });
      const client = connectControl({ target: `unix:${server.unixPath}` });
      return { agent, server, client };
    };
    return new TwoHostAgents(t, await one("host-a", t.a.host), await one("host-b", t.b.host), dir);
  }

  /** Migrates the VM's function to the other host, driving the device through the two agents. */
  async migrate(o: Partial<Omit<MigrationOptions, "source" | "destination">> = {}): Promise<MigrationReport> {
    const t = this.t;
    const [srcSide, dstSide, srcCtl, dstCtl] =
      t.current === "a" ? [t.a, t.b, this.a, this.b] : [t.b, t.a, this.b, this.a];
    const vfn = t.options.vfn;
    const lbaCount = t.options.namespaceBytes / t.options.lbaBytes;
    const common = {
      storage: t.options.storage,
      namespaces: [{ nsid: 1, lbaCount, lbaBytes: t.options.lbaBytes }],
    } as const;
    const srcFn = srcSide.host.vf(vfn);
    const dstFn = dstSide.host.vf(vfn);
    const report = await migrate({
      ...o,
      source: {
        device: portalEndpoint(
          agentPortal({
            ...common,
            client: srcCtl.client,
            cntlid: srcFn.controller.cntlid,
            label: `${srcSide.host.name}/vf${vfn}`,
          }),
        ),
        vm: inProcessVmSource(t.vm.memory, t.vm.port),
      },
      destination: {
        device: portalEndpoint(
          agentPortal({
            ...common,
            client: dstCtl.client,
            cntlid: dstFn.controller.cntlid,
            label: `${dstSide.host.name}/vf${vfn}`,
          }),
        ),
        vm: inProcessVmDestination(t.vm.memory, t.vm.port, dstFn),
      },
      storage: t.options.storage,
      profile: "tp4159",
      functionLabel: `vf${vfn}`,
      path: "out-of-band",
    });
    if (report.result === "completed") {
      t.current = t.current === "a" ? "b" : "a";
      // The source function stays suspended until reset; give it back clean for later migrations.
      await srcCtl.client.resetFunction({ cntlid: srcFn.controller.cntlid });
      await srcSide.host.bringUpVf(vfn, t.options.ioQueuePairs);
    }
    return report;
  }

  async stop(): Promise<void> {
    for (const c of [this.a, this.b]) {
      c.client.close();
      await c.server.close();
      await c.agent.close();
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
