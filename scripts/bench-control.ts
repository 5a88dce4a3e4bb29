/**
 * Prints the control-path benchmark as one JSON object (see `src/bench/control-bench.ts`):
 *
 *   node --import tsx scripts/bench-control.ts [--migrations N] [--rounds N] [--counts 1,4,16] [--no-concurrent]
 *
 * Progress (one line per migration) goes to stderr, the JSON to stdout.
 */
import { parseArgs } from "node:util";
import { runControlBench } from "../src/bench/control-bench.ts";

const { values } = parseArgs({
  options: {
    migrations: { type: "string" },
    rounds: { type: "string" },
    counts: { type: "string" },
    "no-concurrent": { type: "boolean" },
  },
});

const result = await runControlBench({
  ...(values.migrations !== undefined ? { migrationsPerPath: Number(values.migrations) } : {}),
  concurrent:
    values["no-concurrent"] === true
      ? false
      : {
          ...(values.rounds !== undefined ? { rounds: Number(values.rounds) } : {}),
          ...(values.counts !== undefined ? { counts: values.counts.split(",").map(Number) } : {}),
        },
  onMigration: (label, r) =>
    process.stderr.write(
      `${label.padEnd(36)} downtime ${r.downtimeMs.toFixed(3).padStart(9)} ms  device ${r.deviceDowntimeMs
        .toFixed(3)
        .padStart(9)} ms  total ${r.totalMs.toFixed(1).padStart(7)} ms\n`,
    ),
});
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
