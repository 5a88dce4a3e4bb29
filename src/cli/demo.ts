/** `nvmig demo`: the main demo, implemented by `src/demo/run-demo.ts` (`runDemo`). */
import { loadEntry } from "./load-entry.ts";
import type { DemoOptions, RunDemo } from "./types.ts";

export async function runDemoCommand(opts: DemoOptions): Promise<number> {
  const runDemo = await loadEntry<RunDemo>("../demo/run-demo.ts", "runDemo");
  return (await runDemo(opts)) ?? 0;
}
