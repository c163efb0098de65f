// The one schema of a firewall-test expectation file: a matrix of rows, each one connection
// through the lab's firewall and the outcome it must have. The TypeScript types and the
// JSON schema editors use (schema/firewall-expect.schema.json, written at build by
// write-json-schema.ts) both come from it.
import { z } from 'zod';
import { sysctlName } from '../scenario/schema.js';
import { END_HOSTS, HOSTS } from '../vocabulary.js';

/**
 * What the initiator of a row's connection sees, told apart from the captures:
 * - reach: the handshake completes with the other end (its SYN-ACK arrives);
 * - reset-by-firewall: a RST made by the firewall (never seen past it; TTL 64 at the client);
 * - reset-by-server: the SYN crosses the firewall and the other end's kernel resets it (no
 *   listener; for a row `from: server`, "server" is the end the connection goes to);
 * - drop: the SYN stops at the firewall and nothing comes back within the drop wait;
 * - unreachable: the firewall answers with an ICMP destination unreachable error.
 */
export const OUTCOMES = ['reach', 'reset-by-firewall', 'reset-by-server', 'drop', 'unreachable'] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** Longest idle a row may ask for: conntrack timeouts for a test are seconds, not hours. */
export const MAX_IDLE_MS = 600_000;
/** Each row has a client port of its own, from a block of this many. */
export const MAX_ROWS = 500;

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s)$/;

/** "4s", "500ms" or a number of seconds, in ms; undefined for anything else. */
export function durationMs(v: string | number): number | undefined {
  if (typeof v === 'number') return v >= 0 ? Math.round(v * 1000) : undefined;
  const m = DURATION.exec(v.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (m[2] === 's' ? 1000 : 1));
}

const duration = z
  .union([z.number().min(0), z.string()])
  .superRefine((v, ctx) => {
    const ms = durationMs(v);
    if (ms === undefined) ctx.addIssue({ code: 'custom', message: `got ${JSON.stringify(v)}; expected a duration such as 4s or 500ms (or a number of seconds)` });
    else if (ms > MAX_IDLE_MS) ctx.addIssue({ code: 'custom', message: `got ${JSON.stringify(v)}; expected at most ${MAX_IDLE_MS / 1000}s` });
  });

/** Which IP version(s) a row's connection uses: both is one connection over each, judged apart. */
export const ROW_FAMILIES = [4, 6, 'both'] as const;
const family = z.literal(ROW_FAMILIES);
export type RowFamily = (typeof ROW_FAMILIES)[number];

export const Row = z
  .strictObject({
    name: z.string().min(1).max(120).regex(/^[^\x00-\x1f\x7f]+$/, 'one line of printable text').optional().describe('a name for reports (default: from, port, idle)'),
    from: z.enum(END_HOSTS).default('client').describe('the side that opens the connection (the other one listens)'),
    port: z.number().int().min(1).max(65535).describe('the destination port'),
    idle: duration.optional().describe('establish, stay silent this long (e.g. past the firewall\'s conntrack timeout), then send data: the outcome is that of the data'),
    expect: z.enum(OUTCOMES).describe('reach | reset-by-firewall | reset-by-server | drop | unreachable'),
    family: family.optional().describe('the IP version of the connection: 4, 6, or both (one connection each); default: the file\'s family, else 4'),
  })
  .describe('one connection through the firewall and the outcome it must have');
export type Row = z.infer<typeof Row>;

const sysctlValue = z.union([z.string(), z.number().int()]);

export const ExpectationFile = z.strictObject({
  sysctls: z
    .partialRecord(z.enum(HOSTS), z.record(sysctlName, sysctlValue))
    .optional()
    .describe('set in each lab host after the ruleset is loaded, e.g. firewall: { net.netfilter.nf_conntrack_tcp_timeout_established: 3 }'),
  family: family.optional().describe('the family of every row that names none (default 4): 4, 6 or both'),
  rows: z.array(Row).min(1).max(MAX_ROWS),
});
export type ExpectationFile = z.infer<typeof ExpectationFile>;
