// Writes schema/scenario.schema.json from the zod schema, after every build, so the schema
// editors validate against (through the `# yaml-language-server: $schema=...` line at the
// top of each scenario file) is never written by hand and cannot drift from the loader's.
import { writeFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { Scenario } from './schema.js';

/** schema/scenario.schema.json at the project root (this file runs from dist/src/scenario/). */
export const JSON_SCHEMA_FILE = fileURLToPath(new URL('../../../schema/scenario.schema.json', import.meta.url));

export function scenarioJsonSchema(): Record<string, unknown> {
  // io 'input': the file an author writes, where defaulted fields may be left out.
  const generated = z.toJSONSchema(Scenario, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  return {
    $schema: $schema ?? 'https://json-schema.org/draft/2020-12/schema',
    title: 'rstlab scenario',
    description:
      'One cause of a TCP reset, made to happen in the rstlab lab: typed steps (never shell commands), ' +
      'expectations about the RST and what each side saw, and control variants. Generated from src/scenario/schema.ts; do not edit.',
    ...rest,
  };
}

export async function writeJsonSchema(file = JSON_SCHEMA_FILE): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(scenarioJsonSchema(), null, 2)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await writeJsonSchema();
  console.log(`wrote ${JSON_SCHEMA_FILE}`);
}
