/**
 * The options each command hands to its library entry point, and the entry points' signatures. The
 * modules behind `demo`, `bench`, `host`, `vm` and `migrate` implement these; the CLI only parses
 * options into them, calls the entry point and exits with its code.
 *
 * An entry point resolves to the process exit code (0 ok, 1 failure) or to nothing (0). It prints its
 * own progress and result (stdout; JSON when `json` is set) and throws only for failures it cannot
 * describe otherwise (the CLI prints the message as one line and exits 1).
 */

/** What an entry point resolves to: an exit code, or nothing for 0. */
export type EntryExit = number | undefined;

/** `nvmig demo`. */
export interface DemoOptions {
  /** Print one JSON object (the migration report) instead of human-readable progress. Default false. */
  json: boolean;
}
export type RunDemo = (opts: DemoOptions) => Promise<EntryExit>;

/** The benchmarks `nvmig bench` can run. */
export const BENCH_NAMES = ["io", "migration", "vfio-user", "control", "all"] as const;
export type BenchName = (typeof BENCH_NAMES)[number];

/** `nvmig bench <name>`. */
export interface BenchOptions {
  /** Print one JSON object with the figures instead of a table. Default false. */
  json: boolean;
}
export type RunBench = (name: BenchName, opts: BenchOptions) => Promise<EntryExit>;

/** `nvmig host`. */
export interface HostOptions {
  /** Path of the host configuration file. Required. */
  config: string;
}
export type RunHostDaemon = (opts: HostOptions) => Promise<EntryExit>;

export const WORKLOAD_PATTERNS = ["random", "sequential"] as const;

/** `nvmig vm`: a VMM process attached to one function's vfio-user socket, running a verified workload. */
export interface VmOptions {
  /** Path of the function's vfio-user UNIX socket. Required. */
  attach: string;
  /** Print one JSON object (workload statistics + verification report) at the end. Default false. */
  json: boolean;
  /** Commands to issue in total, then drain and verify. Default unlimited; 1..2^53 − 1. */
  ops: number | undefined;
  /** Run time, ms, then drain and verify. Default unlimited (until ops or SIGINT); 1..2^31 − 1. */
  durationMs: number | undefined;
  /** Guest RAM, MiB. Default 64; 4..65536. */
  memoryMib: number;
  /** I/O queues the workload uses. Default 1; 1..64. */
  queues: number;
  /** Commands outstanding per queue. Default 16; 1..1024. */
  queueDepth: number;
  /** Bytes per command, a multiple of the LBA size. Default 4096; 512..1048576. */
  blockBytes: number;
  /** Share of reads, percent. Default 50; 0..100. */
  readPercent: number;
  /** LBA choice. Default "random". */
  pattern: (typeof WORKLOAD_PATTERNS)[number];
  /** Workload PRNG seed. Default 1; 0..4294967295. */
  seed: number;
  /** Write verifiable patterns and check every read. Default true. */
  verify: boolean;
  /** Control channel socket path. Default none. */
  control?: string;
  /** Wait for a migrated guest at HOST:PORT instead of booting one. Default none. */
  incoming?: string;
  /** LBAs the workload uses: [first, count]. Default [0, min(namespace size, 262144)]. */
  lbaRange?: readonly [number, number];
}
export type RunVmProcess = (opts: VmOptions) => Promise<EntryExit>;

export const MIGRATION_PATHS = ["in-band", "out-of-band"] as const;
export type MigrationPath = (typeof MIGRATION_PATHS)[number];

/** `nvmig migrate`. */
export interface MigrateOptions {
  /** Source host: its `nvmig host` configuration file. Required. */
  from: string;
  /** Destination host: its `nvmig host` configuration file. Required. */
  to: string;
  /** The controlled function to move, as the hosts name it. Required. */
  functionId: string;
  /** The VM using the function: the path of its control socket (`nvmig vm --control`). Required. */
  vmId: string;
  /** Control socket of the destination VMM started by the command. Default <dest socketDir>/<function>-vm.control. */
  destControl?: string;
  /** Also write the HTML report here. Default none. */
  reportHtml?: string;
  /** Out of band: the agents' lease on each function, ms. Default 10000; 1000..600000. */
  leaseMs?: number;
  /** In-band (VFIO v2 portal through the VMM) or out-of-band (gRPC agents). Default "in-band". */
  path: MigrationPath;
  /** Longest acceptable downtime, ms. Default 300; 1..600000. */
  maxDowntimeMs: number;
  /** Bandwidth cap for the migration data, bytes/s. Default undefined = unlimited; 1..2^53 − 1. */
  maxBandwidthBytesPerSecond: number | undefined;
  /** Print one JSON object (the migration report). Default false. */
  json: boolean;
}
export type RunMigrateCommand = (opts: MigrateOptions) => Promise<EntryExit>;
