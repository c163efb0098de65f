// Writes schema/firewall-expect.schema.json from the zod schema after every build, like the
// scenario's schema: named on the first line of each expectation file, never written by hand.
import { writeFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { ExpectationFile } from './expect-schema.js';

export const EXPECT_JSON_SCHEMA_FILE = fileURLToPath(new URL('../../../schema/firewall-expect.schema.json', import.meta.url));

export function expectJsonSchema(): Record<string, unknown> {
  const { $schema, ...rest } = z.toJSONSchema(ExpectationFile, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
  return {
    $schema: $schema ?? 'https://json-schema.org/draft/2020-12/schema',
    title: 'rstlab firewall-test expectations',
    description:
      'The outcomes a firewall ruleset must give, one row per connection through the lab\'s firewall ' +
      '(rstlab firewall-test --rules FILE --expect FILE). Generated from src/firewall/expect-schema.ts; do not edit.',
    ...rest,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await mkdir(dirname(EXPECT_JSON_SCHEMA_FILE), { recursive: true });
  await writeFile(EXPECT_JSON_SCHEMA_FILE, `${JSON.stringify(expectJsonSchema(), null, 2)}\n`);
  console.log(`wrote ${EXPECT_JSON_SCHEMA_FILE}`);
}
