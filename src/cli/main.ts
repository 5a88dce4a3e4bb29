/**
 * `nvmig` command line: host | vm | migrate | demo | bench | inspect | certs. The program (options,
 * help, exit codes) is built in program.ts; each command lives in its own file and only wires library
 * pieces together.
 */
import { runCli } from "./program.ts";

// Exit explicitly: a command that finished must not be kept alive by a timer or socket left behind.
process.exit(await runCli(process.argv));
