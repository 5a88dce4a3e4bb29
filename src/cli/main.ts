/**
 * `nvmig` command line: host | vm | migrate | demo | bench | inspect | certs. The program (options,
 * help, exit codes) is built in program.ts; each command lives in its own file and only wires library
 * pieces together.
 */
import { runCli } from "./program.ts";

process.exitCode = await runCli(process.argv);
