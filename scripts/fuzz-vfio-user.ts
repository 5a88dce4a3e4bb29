/**
 * Long fuzz run of the vfio-user server (same inputs and properties as
 * `src/vfio-user/server.fuzz.test.ts`, see `src/vfio-user/testing/fuzz-harness.ts`).
 *
 * Usage: node --import tsx scripts/fuzz-vfio-user.ts [--runs N] [--seed S] [--minutes M]
 *   --runs     inputs per round (default 200000)
 *   --seed     seed of the first round (default: random); later rounds use seed + round
 *   --minutes  keep running rounds until this much time has passed (default: one round)
 * A failure prints fast-check's counterexample and seed (re-run with --seed) and exits 1.
 */
import fc from "fast-check";
import { ServerFuzzTarget, serverFuzzProperty } from "../src/vfio-user/testing/fuzz-harness.ts";

function arg(name: string): number | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v)) throw new Error(`--${name} needs a number`);
  return v;
}

const runs = arg("runs") ?? 200_000;
const firstSeed = arg("seed") ?? Math.floor(Math.random() * 0x7fffffff);
const deadlineMs = Date.now() + (arg("minutes") ?? 0) * 60_000;

let round = 0;
do {
  const seed = firstSeed + round;
  const holder = { target: new ServerFuzzTarget() };
  const started = performance.now();
  const result = fc.check(serverFuzzProperty(holder), { numRuns: runs, seed });
  if (result.failed) {
    console.error(fc.defaultReportMessage(result));
    console.error(`reproduce: node --import tsx scripts/fuzz-vfio-user.ts --runs ${runs} --seed ${seed}`);
    process.exit(1);
  }
  const target = holder.target;
  target.finish();
  const ms = performance.now() - started;
  console.log(
    JSON.stringify({
      round,
      seed,
      runs,
      ms: Math.round(ms),
      casesPerSecond: Math.round((runs / ms) * 1000),
      ...target.stats,
      events: Object.fromEntries([...target.events].sort((a, b) => b[1] - a[1])),
    }),
  );
  round++;
} while (Date.now() < deadlineMs);
