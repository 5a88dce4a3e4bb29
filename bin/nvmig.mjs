#!/usr/bin/env node
// The `nvmig` command. The sources are TypeScript run through tsx (Node 20 has no type stripping).
import { register } from "tsx/esm/api";

register();
await import("../src/cli/main.ts");
