/** Writes docs/openapi.json from the routes and their request schemas: `npx tsx scripts/write-openapi.ts`. */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { openApiDocument } from "../src/api-description/openapi.js";

process.env.LOG_LEVEL ??= "error";
const target = fileURLToPath(new URL("../docs/openapi.json", import.meta.url));
writeFileSync(target, `${JSON.stringify(await openApiDocument(), null, 2)}\n`);
console.log(`wrote ${target}`);
