/** `nvmig host`: the per-host daemon, implemented by `src/host/daemon.ts` (`runHostDaemon`). */
import { loadEntry } from "./load-entry.ts";
import type { HostOptions, RunHostDaemon } from "./types.ts";

export async function runHostCommand(opts: HostOptions): Promise<number> {
  const runHostDaemon = await loadEntry<RunHostDaemon>("../host/daemon.ts", "runHostDaemon");
  return (await runHostDaemon(opts)) ?? 0;
}
