/**
 * The `nvmig` program: every command's options and help text, and the exit-code policy. Each command's
 * action lazily imports its own file (`./<command>.ts`), so `--help` and usage errors load nothing but
 * commander.
 *
 * Exit codes: 0 ok · 1 the command failed (one line on stderr) · 2 usage error (unknown option,
 * missing or invalid argument; one line on stderr naming the command's --help).
 */
import { readFileSync } from "node:fs";
import { Argument, Command, type CommanderError, Option } from "@commander-js/extra-typings";
import { CliError } from "./errors.ts";
import { printError } from "./output.ts";
import { commaList, integer } from "./parse.ts";
import { BENCH_NAMES, MIGRATION_PATHS, WORKLOAD_PATTERNS } from "./types.ts";

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const INT31 = 2 ** 31 - 1;
const U32 = 2 ** 32 - 1;

/** A usage error raised by commander inside command `command` ("" for the program itself). */
class UsageError extends Error {
  constructor(
    readonly command: string,
    readonly commanderError: CommanderError,
  ) {
    super(commanderError.message);
  }
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}

function jsonOption(what: string) {
  return new Option("--json", `print ${what} as one JSON document on stdout`).default(false);
}

/** Holds the exit code an action reports (the program's result). */
interface RunState {
  exitCode: number;
}

/**
 * Where the program itself writes: help text (`out`), usage and failure lines (`err`). Commands print
 * their results to process.stdout. Default: process.stdout / process.stderr.
 */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const processIo: CliIo = {
  out: (text) => {
    process.stdout.write(text);
  },
  err: (text) => {
    process.stderr.write(text);
  },
};

/** Builds the program. Actions store their exit code in `state`. */
export function buildProgram(state: RunState = { exitCode: 0 }, io: CliIo = processIo) {
  const program = new Command()
    .name("nvmig")
    .description(
      "Live migration of SR-IOV NVMe functions: an NVMe controller emulator (PF + VFs, TP4159), a VFIO " +
        "migration v2 portal per function, a vfio-user server, a gRPC control plane and an orchestrator.",
    )
    .version(packageVersion(), "-V, --version", "print the version and exit")
    .helpOption("-h, --help", "print this help and exit")
    .helpCommand("help [command]", "print help for a command")
    .configureOutput({ writeOut: io.out, writeErr: io.err, outputError: () => {} })
    .showSuggestionAfterError(true)
    .addHelpText(
      "after",
      "\nExit codes: 0 ok, 1 failure, 2 usage error. NVMIG_DEBUG=1 prints stack traces of failures.\n" +
        "Run 'nvmig <command> --help' for a command's options.",
    );
  program.exitOverride((err) => {
    throw new UsageError("", err);
  });

  const sub = (name: string, description: string) =>
    program
      .command(name)
      .description(description)
      .helpOption("-h, --help", "print this help and exit")
      .exitOverride((err) => {
        throw new UsageError(name, err);
      });

  sub("demo", "Run the main demo on built-in defaults: a VM doing verified I/O while its function migrates")
    .addOption(jsonOption("the migration report"))
    .addHelpText("after", "\nExample:\n  nvmig demo --json")
    .action(async (opts) => {
      const { runDemoCommand } = await import("./demo.ts");
      state.exitCode = await runDemoCommand({ json: opts.json });
    });

  sub("bench", "Run benchmarks and print their figures")
    .addArgument(new Argument("<name>", "which benchmark").choices(BENCH_NAMES))
    .addOption(jsonOption("the figures"))
    .addHelpText("after", "\nExample:\n  nvmig bench io --json")
    .action(async (name, opts) => {
      const { runBenchCommand } = await import("./bench.ts");
      state.exitCode = await runBenchCommand(name, { json: opts.json });
    });

  sub("host", "Run a host daemon: an NVMe subsystem (PF + VFs), a vfio-user socket per VF, the gRPC agent")
    .requiredOption("--config <FILE>", "host configuration file (path; required, no default)")
    .addHelpText("after", "\nExample:\n  nvmig host --config hostA.json")
    .action(async (opts) => {
      const { runHostCommand } = await import("./host.ts");
      state.exitCode = await runHostCommand({ config: opts.config });
    });

  sub("vm", "Run a VMM process: guest RAM + guest NVMe driver on one function, with a verified workload")
    .requiredOption("--attach <SOCKET>", "the function's vfio-user UNIX socket (path; required, no default)")
    .addOption(jsonOption("the workload statistics and verification report"))
    .addOption(
      new Option(
        "--ops <N>",
        "commands to issue in total, then drain and verify (count, 1..2^53-1; default: unlimited)",
      ).argParser(integer(1, MAX_SAFE)),
    )
    .addOption(
      new Option(
        "--duration-ms <N>",
        "run time, then drain and verify (ms, 1..2147483647; default: unlimited, until --ops or SIGINT)",
      ).argParser(integer(1, INT31)),
    )
    .option("--memory-mib <N>", "guest RAM (MiB, 4..65536)", integer(4, 65536), 64)
    .option("--queues <N>", "I/O queues the workload uses (count, 1..64)", integer(1, 64), 1)
    .option("--queue-depth <N>", "commands outstanding per queue (count, 1..1024)", integer(1, 1024), 16)
    .option(
      "--block-bytes <N>",
      "bytes per command, a multiple of the LBA size (bytes, 512..1048576)",
      integer(512, 1 << 20),
      4096,
    )
    .option("--read-percent <P>", "share of reads (percent, 0..100)", integer(0, 100), 50)
    .addOption(
      new Option("--pattern <PATTERN>", "how LBAs are chosen").choices(WORKLOAD_PATTERNS).default("random"),
    )
    .option("--seed <N>", "workload PRNG seed (integer, 0..4294967295)", integer(0, U32), 1)
    .addOption(
      new Option("--no-verify", "do not write verifiable patterns nor check reads (default: verify)"),
    )
    .option(
      "--control <PATH>",
      "serve the VM's control channel (pause, dirty log, migration) at this UNIX socket (path, mode 0600; default: none)",
    )
    .option(
      "--incoming <HOST:PORT>",
      "wait for a migrated guest on this TCP address instead of booting one (PORT 0 = any free port; default: boot)",
    )
    .option(
      "--lba-first <N>",
      "first LBA the workload uses (LBA, 0..2^53-1; default 0)",
      integer(0, MAX_SAFE),
    )
    .option(
      "--lba-count <N>",
      "LBAs the workload uses (count, 1..2^53-1; default min(namespace, 262144))",
      integer(1, MAX_SAFE),
    )
    .addHelpText(
      "after",
      "\nExample:\n  nvmig vm --attach /run/nvmig/hostA/vf1.sock --duration-ms 10000 --json\n" +
        "  nvmig vm --attach /run/nvmig/hostB/vf1.sock --incoming 127.0.0.1:0 --control /run/nvmig/vm1-b.control",
    )
    .action(async (opts) => {
      const { runVmCommand } = await import("./vm.ts");
      state.exitCode = await runVmCommand({
        attach: opts.attach,
        json: opts.json,
        ops: opts.ops,
        durationMs: opts.durationMs,
        memoryMib: opts.memoryMib,
        queues: opts.queues,
        queueDepth: opts.queueDepth,
        blockBytes: opts.blockBytes,
        readPercent: opts.readPercent,
        pattern: opts.pattern,
        seed: opts.seed,
        verify: opts.verify,
        ...(opts.control === undefined ? {} : { control: opts.control }),
        ...(opts.incoming === undefined ? {} : { incoming: opts.incoming }),
        ...(opts.lbaFirst === undefined && opts.lbaCount === undefined
          ? {}
          : { lbaRange: [opts.lbaFirst ?? 0, opts.lbaCount ?? 262144] as const }),
      });
    });

  sub("migrate", "Live-migrate one function (and its VM's device state) from one host to another")
    .requiredOption("--from <CONFIG>", "source host: its `nvmig host` configuration file (path; required)")
    .requiredOption("--to <CONFIG>", "destination host: its `nvmig host` configuration file (path; required)")
    .requiredOption(
      "--function <ID>",
      "the controlled function to move: vf<N>, as the hosts name it (required)",
    )
    .requiredOption(
      "--vm <CONTROL>",
      "the VM using the function: its control socket, `nvmig vm --control` (path; required)",
    )
    .option(
      "--dest-control <PATH>",
      "control socket of the destination VMM this command starts (path; default: <destination socketDir>/<function>-vm.control)",
    )
    .option(
      "--report <FILE>",
      "also write the HTML report with its timeline chart here (path; default: none)",
    )
    .addOption(
      new Option(
        "--lease-ms <N>",
        "out of band: the agents' lease; if this command dies the source resumes this long after (ms, 1000..600000; default: 10000)",
      ).argParser(integer(1000, 600_000)),
    )
    .addOption(
      new Option(
        "--path <PATH>",
        "in-band: through the VMM's VFIO v2 portal; out-of-band: through the hosts' gRPC agents",
      )
        .choices(MIGRATION_PATHS)
        .default("in-band"),
    )
    .option(
      "--max-downtime-ms <N>",
      "longest acceptable downtime, vCPUs stopped (ms, 1..600000)",
      integer(1, 600_000),
      300,
    )
    .addOption(
      new Option(
        "--max-bandwidth <BYTES_PER_S>",
        "cap on migration data rate (bytes/s, 1..2^53-1; default: unlimited)",
      ).argParser(integer(1, MAX_SAFE)),
    )
    .addOption(jsonOption("the migration report"))
    .addHelpText(
      "after",
      "\nExample:\n  nvmig migrate --from /etc/nvmig/host-a.json --to /etc/nvmig/host-b.json \\\n" +
        "    --function vf1 --vm /run/nvmig/vm1.control --path out-of-band --max-downtime-ms 300 --json",
    )
    .action(async (opts) => {
      const { runMigrate } = await import("./migrate.ts");
      state.exitCode = await runMigrate({
        from: opts.from,
        to: opts.to,
        functionId: opts.function,
        vmId: opts.vm,
        path: opts.path,
        maxDowntimeMs: opts.maxDowntimeMs,
        maxBandwidthBytesPerSecond: opts.maxBandwidth,
        json: opts.json,
        ...(opts.destControl === undefined ? {} : { destControl: opts.destControl }),
        ...(opts.report === undefined ? {} : { reportHtml: opts.report }),
        ...(opts.leaseMs === undefined ? {} : { leaseMs: opts.leaseMs }),
      });
    });

  sub(
    "inspect",
    "Decode a file holding a TP4159 controller state blob, or a device migration stream (NVMIGSTR), " +
      "into readable form: header, NVMe Controller State (I/O SQs and CQs), nvmig vendor section",
  )
    .argument("<FILE>", "the file to decode (path)")
    .addOption(jsonOption("the decoding"))
    .option(
      "--max-records <N>",
      "streams: most records listed one by one; CONTROLLER_STATE records are always listed (count, 0..1000000)",
      integer(0, 1_000_000),
      256,
    )
    .addHelpText("after", "\nExample:\n  nvmig inspect vf1.state --json")
    .action(async (file, opts) => {
      const { runInspect } = await import("./inspect.ts");
      state.exitCode = await runInspect(file, { json: opts.json, maxRecords: opts.maxRecords });
    });

  sub("certs", "Make development certificates for the control plane's mutual TLS (CA, servers, clients)")
    .requiredOption("--dir <DIR>", "output directory, created with mode 0700 if missing (path; required)")
    .addOption(
      new Option("--hosts <LIST>", "comma-separated host names or IP addresses, one server certificate each")
        .argParser(commaList)
        .default(["localhost"], "localhost"),
    )
    .addOption(
      new Option("--clients <LIST>", "comma-separated client identities, one client certificate each")
        .argParser(commaList)
        .default(["orchestrator"], "orchestrator"),
    )
    .option("--validity-days <N>", "validity of new certificates (days, 1..3650)", integer(1, 3650), 365)
    .addOption(jsonOption("the certificate and key paths"))
    .addHelpText(
      "after",
      "\nExample:\n  nvmig certs --dir ./certs --hosts hostA,hostB --clients orchestrator",
    )
    .action(async (opts) => {
      const { runCerts } = await import("./certs.ts");
      state.exitCode = await runCerts({
        dir: opts.dir,
        hosts: opts.hosts,
        clients: opts.clients,
        validityDays: opts.validityDays,
        json: opts.json,
      });
    });

  return program;
}

/** Runs the program on `argv` (process.argv shape) and resolves to the exit code; never rejects. */
export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const state: RunState = { exitCode: 0 };
  const program = buildProgram(state, io);
  try {
    await program.parseAsync([...argv]);
    return state.exitCode;
  } catch (e) {
    if (e instanceof UsageError) {
      const err = e.commanderError;
      if (err.exitCode === 0) return 0; // --help, --version
      const name = e.command === "" ? "" : ` ${e.command}`;
      const message =
        err.code === "commander.help"
          ? "a command is required"
          : err.message.replace(/^error:\s*/i, "").replace(/\s*\n\s*/g, " ");
      printError(new CliError(`${message} (see 'nvmig${name} --help')`, 2), e.command || undefined, io.err);
      return 2;
    }
    const command = program.args[0];
    printError(e, command, io.err);
    return e instanceof CliError ? e.exitCode : 1;
  }
}
