/**
 * `nvmig` command line: host | vm | migrate | demo | bench | inspect.
 * Each command lives in its own file and only wires library pieces together.
 */
import { Command } from "@commander-js/extra-typings";

const program = new Command()
  .name("nvmig")
  .description("Live migration of SR-IOV NVMe functions")
  .version("0.1.0");

program
  .command("demo")
  .description("Run the main demo on built-in defaults")
  .option("--json", "print one JSON object on stdout")
  .action(async (opts) => {
    const { runDemoCommand } = await import("./demo.ts");
    process.exitCode = await runDemoCommand(opts);
  });

await program.parseAsync(process.argv);
