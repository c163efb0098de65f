// Expectation file → checked rows, every mistake located as file:line:col with the same
// machinery (and words) as scenario files (scenario/messages.ts).
import { collect, issueProblems, readYaml, type Problem } from '../scenario/messages.js';
import { durationMs, ExpectationFile, MAX_ROWS, type Outcome, type Row } from './expect-schema.js';
import { readInputFile } from '../scenario/input-file.js';
import { RULESET_MAX_BYTES } from './ruleset.js';
import type { EndHost, Family, Host } from '../vocabulary.js';

/** One row, checked, with where it is written. */
export interface PlannedRow {
  /** 1, 2, ... in file order */
  index: number;
  line: number;
  name: string;
  from: EndHost;
  to: EndHost;
  port: number;
  idleMs?: number;
  expect: Outcome;
  /** the IP version of this connection; a row of family both is planned as one row per family */
  family: Family;
  /** a row of family both: the index of its other family's half */
  sibling?: number;
}

export interface Expectations {
  file: string;
  sysctls: Partial<Record<Host, Record<string, string | number>>>;
  rows: PlannedRow[];
}

/** Whether the side a row connects to listens on its port: everywhere but where the row
 * expects the other end's kernel to reset it (no listener there). */
export const needsListener = (r: { expect: Outcome; idle?: unknown; idleMs?: number }): boolean => r.expect === 'reach' || r.idle !== undefined || r.idleMs !== undefined;

export function rowName(r: Pick<Row, 'name' | 'from' | 'port' | 'idle'>): string {
  return r.name ?? `${r.from === 'server' ? 'server→client ' : ''}${r.port}/tcp${r.idle !== undefined ? ` idle ${typeof r.idle === 'number' ? `${r.idle}s` : r.idle}` : ''}`;
}

/** What the schema cannot see: rows that need a listener and rows that need none on the same port. */
export function rowProblems(rows: Row[]): Problem[] {
  const problems: Problem[] = [];
  rows.forEach((r, i) => {
    if (r.idle !== undefined && r.expect === 'reset-by-server') {
      problems.push({ path: ['rows', i, 'expect'], at: 'value', message: 'an idle row first completes a handshake, so the other side listens on its port: it cannot expect reset-by-server' });
    }
  });
  rows.forEach((r, i) => {
    if (r.expect !== 'reset-by-server') return;
    const j = rows.findIndex((o) => o.from === r.from && o.port === r.port && needsListener(o));
    if (j >= 0) {
      problems.push({
        path: ['rows', i, 'expect'], at: 'value',
        message: `reset-by-server needs port ${r.port} closed on the ${r.from === 'client' ? 'server' : 'client'}, but row ${j + 1} (${rowName(rows[j]!)}, ${rows[j]!.expect}${rows[j]!.idle !== undefined ? ' after idle' : ''}) needs a listener there`,
      });
    }
  });
  return problems;
}

export function parseExpectations(text: string, file: string): Expectations {
  const { data, locate, place } = readYaml(text, file, 'the file holds no expectations (expected a mapping with rows: [...])');
  const parsed = ExpectationFile.safeParse(data);
  if (!parsed.success) throw collect(file, place(issueProblems(parsed.error.issues, [], data, ExpectationFile)));
  const semantic = rowProblems(parsed.data.rows);
  if (semantic.length > 0) throw collect(file, place(semantic));
  // A row of family both becomes two rows, IPv4 then IPv6, each judged on its own (and
  // their disagreement reported as such: families.ts).
  const rows: PlannedRow[] = [];
  parsed.data.rows.forEach((r, i) => {
    const fam = r.family ?? parsed.data.family ?? 4;
    const families: Family[] = fam === 'both' ? [4, 6] : [fam];
    const first = rows.length + 1;
    for (const f of families) {
      rows.push({
        index: rows.length + 1,
        line: locate(['rows', i]).line,
        name: `${rowName(r)}${f === 6 ? ' (IPv6)' : ''}`,
        from: r.from,
        to: r.from === 'client' ? 'server' : 'client',
        port: r.port,
        ...(r.idle !== undefined ? { idleMs: durationMs(r.idle)! } : {}),
        expect: r.expect,
        family: f,
        ...(families.length === 2 ? { sibling: f === 4 ? first + 1 : first } : {}),
      });
    }
  });
  if (rows.length > MAX_ROWS) {
    // each connection has a client port of its own, from the lab's block
    throw collect(file, place([{ path: ['rows'], at: 'key', message: `${rows.length} connections (a row of family both is two); at most ${MAX_ROWS}` }]));
  }
  return { file, sysctls: parsed.data.sysctls ?? {}, rows };
}

export async function loadExpectations(file: string): Promise<Expectations> {
  return parseExpectations(await readInputFile(file, 'an expectation file', RULESET_MAX_BYTES), file);
}
