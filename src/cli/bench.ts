/** `nvmig bench <name>`: benchmarks, implemented by `src/bench/index.ts` (`runBench`). */
import { loadEntry } from "./load-entry.ts";
import type { BenchName, BenchOptions, RunBench } from "./types.ts";

export async function runBenchCommand(name: BenchName, opts: BenchOptions): Promise<number> {
  const runBench = await loadEntry<RunBench>("../bench/index.ts", "runBench");
  return (await runBench(name, opts)) ?? 0;
}
