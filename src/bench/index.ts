/**
 * `nvmig bench <name>`: runs one benchmark (or all) and prints its figures — one JSON object with
 * `--json`. Figures are measured in one run on this machine; compare ratios, not absolutes.
 */
import type { BenchName, BenchOptions, EntryExit } from "../cli/types.ts";

/** Module and export of each benchmark. */
const BENCHES: Record<Exclude<BenchName, "all">, [file: string, exportName: string]> = {
  io: ["./io-bench.ts", "runIoBench"],
  migration: ["./migration-bench.ts", "runMigrationBench"],
  "vfio-user": ["./vfio-user-bench.ts", "runVfioUserBench"],
  control: ["./control-bench.ts", "runControlBench"],
};

async function one(name: Exclude<BenchName, "all">): Promise<unknown> {
  const [file, exportName] = BENCHES[name];
  const mod = (await import(new URL(file, import.meta.url).href)) as Record<string, unknown>;
  const run = mod[exportName];
  if (typeof run !== "function") throw new Error(`the ${name} benchmark is not available in this build`);
  return (run as () => Promise<unknown>)();
}

export async function runBench(name: BenchName, opts: BenchOptions): Promise<EntryExit> {
  const names: Exclude<BenchName, "all">[] =
    name === "all" ? ["io", "migration", "vfio-user", "control"] : [name];
  const out: Record<string, unknown> = {};
  for (const n of names) {
    try {
      out[n] = await one(n);
    } catch (e) {
      if (name !== "all") throw e;
      out[n] = { error: (e as Error).message };
    }
  }
  const result = name === "all" ? out : out[name];
  console.log(opts.json ? JSON.stringify(result) : JSON.stringify(result, null, 2));
  return 0;
}
