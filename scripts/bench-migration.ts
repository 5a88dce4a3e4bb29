/**
 * Prints the migration benchmark as one JSON object (see `src/bench/migration-bench.ts`):
 *
 *   node --import tsx scripts/bench-migration.ts [--migrations N] [--warmup N] [--qp 1,4,16,64]
 *                                                [--no-verify] [--no-local]
 *
 * Progress (one line per measured migration) goes to stderr, the JSON to stdout.
 */
import { parseArgs } from "node:util";
import { runMigrationBench } from "../src/bench/migration-bench.ts";

const { values } = parseArgs({
  options: {
    migrations: { type: "string" },
    warmup: { type: "string" },
    qp: { type: "string" },
    "no-verify": { type: "boolean" },
    "no-local": { type: "boolean" },
  },
});

const result = await runMigrationBench({
  ...(values.migrations !== undefined ? { migrationsPerKey: Number(values.migrations) } : {}),
  ...(values.warmup !== undefined ? { warmupMigrations: Number(values.warmup) } : {}),
  ...(values.qp !== undefined ? { queuePairCounts: values.qp.split(",").map(Number) } : {}),
  verify: values["no-verify"] !== true,
  ...(values["no-local"] === true ? { localStorage: false as const } : {}),
  onMigration: (key, i, r) =>
    process.stderr.write(
      `${key.padStart(2)} qp #${i}  device downtime ${r.deviceDowntimeMs.toFixed(3).padStart(8)} ms  ` +
        `downtime ${r.downtimeMs.toFixed(3).padStart(8)} ms  state ${r.stateBytes} B  ` +
        `stop ${r.downtime.deviceStopMs} data ${r.downtime.deviceDataMs} ram ${r.downtime.finalRamMs} ` +
        `resume ${r.downtime.deviceResumeMs}\n`,
    ),
});
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
