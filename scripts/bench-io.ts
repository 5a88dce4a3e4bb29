/**
 * Prints the I/O benchmark as one JSON object (see `src/bench/io-bench.ts`):
 *
 *   node --import tsx scripts/bench-io.ts [--duration-ms N] [--warmup-ms N] [--no-rss] [--case NAME ...]
 *
 * Progress (one line per case) goes to stderr, the JSON to stdout.
 */
import { parseArgs } from "node:util";
import { runIoBench } from "../src/bench/io-bench.ts";

const { values } = parseArgs({
  options: {
    "duration-ms": { type: "string" },
    "warmup-ms": { type: "string" },
    "working-set-mib": { type: "string" },
    "no-rss": { type: "boolean" },
    case: { type: "string", multiple: true },
  },
});

const result = await runIoBench({
  ...(values["duration-ms"] !== undefined ? { durationMs: Number(values["duration-ms"]) } : {}),
  ...(values["warmup-ms"] !== undefined ? { warmupMs: Number(values["warmup-ms"]) } : {}),
  ...(values["working-set-mib"] !== undefined
    ? { workingSetBytes: Number(values["working-set-mib"]) * 2 ** 20 }
    : {}),
  ...(values.case !== undefined ? { cases: values.case } : {}),
  rss: values["no-rss"] !== true,
  onCase: (c) =>
    process.stderr.write(
      `${c.name.padEnd(36)} ${String(c.iops).padStart(9)} IOPS (${String(c.iopsPerCpuSecond).padStart(9)}/cpu-s) ${c.gibPerSecond.toFixed(3).padStart(7)} GiB/s ` +
        `p50 ${c.latencyUs.p50} µs  irq/op ${c.interruptsPerOp}  db/op ${c.doorbellsPerOp}\n`,
    ),
});
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
