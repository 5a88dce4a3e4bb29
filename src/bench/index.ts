/**
 * `nvmig bench <name>`: runs one benchmark (or all) and prints its figures — one JSON object with
 * `--json`. Figures are measured in one run on this machine; compare ratios, not absolutes.
 */
import type { BenchName, BenchOptions, EntryExit } from "../cli/types.ts";

async function one(name: Exclude<BenchName, "all">): Promise<unknown> {
  switch (name) {
    case "io":
      return (await import("./io-bench.ts")).runIoBench();
    case "migration":
      return (await import("./migration-bench.ts")).runMigrationBench();
    case "vfio-user": {
      const m = (await import(new URL("./vfio-user-bench.ts", import.meta.url).href)) as {
        runVfioUserBench?: () => Promise<unknown>;
      };
      if (m.runVfioUserBench === undefined)
        throw new Error("the vfio-user benchmark is not available in this build");
      return m.runVfioUserBench();
    }
    case "control": {
      const m = (await import(new URL("./control-bench.ts", import.meta.url).href)) as {
        runControlBench?: () => Promise<unknown>;
      };
      if (m.runControlBench === undefined)
        throw new Error("the control benchmark is not available in this build");
      return m.runControlBench();
    }
  }
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
