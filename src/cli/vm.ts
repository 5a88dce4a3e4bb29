/** `nvmig vm`: a VMM process with a verified workload, implemented by `src/vmm/vm-process.ts` (`runVmProcess`). */
import { loadEntry } from "./load-entry.ts";
import type { RunVmProcess, VmOptions } from "./types.ts";

export async function runVmCommand(opts: VmOptions): Promise<number> {
  const runVmProcess = await loadEntry<RunVmProcess>("../vmm/vm-process.ts", "runVmProcess");
  return (await runVmProcess(opts)) ?? 0;
}
