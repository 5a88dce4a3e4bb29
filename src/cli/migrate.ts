/** `nvmig migrate`: one live migration, implemented by `src/migration/cli-migrate.ts` (`runMigrateCommand`). */
import { loadEntry } from "./load-entry.ts";
import type { MigrateOptions, RunMigrateCommand } from "./types.ts";

export async function runMigrate(opts: MigrateOptions): Promise<number> {
  const runMigrateCommand = await loadEntry<RunMigrateCommand>(
    "../migration/cli-migrate.ts",
    "runMigrateCommand",
  );
  return (await runMigrateCommand(opts)) ?? 0;
}
