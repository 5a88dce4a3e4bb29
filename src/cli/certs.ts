/** `nvmig certs`: development certificates for the control plane's mutual TLS (`makeDevCertificates`). */
import { makeDevCertificates } from "../control/certs.ts";
import { printResult } from "./output.ts";

export interface CertsCliOptions {
  dir: string;
  hosts: readonly string[];
  clients: readonly string[];
  validityDays: number;
  json: boolean;
}

export async function runCerts(opts: CertsCliOptions): Promise<number> {
  const made = makeDevCertificates({
    dir: opts.dir,
    hosts: opts.hosts,
    clients: opts.clients,
    validityDays: opts.validityDays,
  });
  const files = [
    made.ca.cert,
    made.ca.key,
    ...Object.values(made.servers).flatMap((p) => [p.cert, p.key]),
    ...Object.values(made.clients).flatMap((p) => [p.cert, p.key]),
  ];
  printResult(opts.json ? made : files, { json: opts.json }, () => `${files.join("\n")}\n`);
  return 0;
}
