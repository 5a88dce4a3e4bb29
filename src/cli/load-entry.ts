/**
 * Loads a command's library entry point on demand. A command whose module is not part of this build
 * fails with one clear line ("… is not available in this build …", exit 1) instead of a module
 * resolution stack; an entry module that exists but fails to load is a real error and is reported as
 * such.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CliError } from "./errors.ts";

/**
 * Imports `exportName` from the module at `modulePath` (relative to this folder, e.g.
 * "../demo/run-demo.ts"). Throws CliError (exit 1) when the module or the export is missing.
 */
export async function loadEntry<F>(modulePath: string, exportName: string): Promise<F> {
  const url = new URL(modulePath, import.meta.url);
  const shown = fileURLToPath(url).replace(`${fileURLToPath(new URL("../../", import.meta.url))}`, "");
  if (!existsSync(url)) throw new CliError(`not available in this build (${shown} is missing)`);
  const mod = (await import(url.href)) as Record<string, unknown>;
  const entry = mod[exportName];
  if (typeof entry !== "function")
    throw new CliError(`not available in this build (${shown} does not export ${exportName}())`);
  return entry as F;
}
