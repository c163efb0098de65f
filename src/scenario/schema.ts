// The one schema of a scenario file. The TypeScript types below and the JSON schema
// that editors use (schema/scenario.schema.json, written by write-json-schema.ts) both
// come from it, so they cannot drift apart.
import { z } from 'zod';
import { CAPTURE_POINTS, END_HOSTS, EXTRA_HOSTS, HOSTS, SEQ_RELATION, SEQ_RELATION_WORDS } from '../vocabulary.js';
import { RULE_HEAD_TEXT, RULE_MAX_CHARS, ruleProblem } from './iptables-rule.js';
import { SLOT_SIZE } from '../lab/owner.js';
import { CAUSE_IDS } from './causes.js';

const host = z.enum(HOSTS);
const endHost = z.enum(END_HOSTS);
const capturePoint = z.enum(CAPTURE_POINTS);
const port = z.number().int().min(1).max(65535);
const id = z.string().regex(/^[a-z][a-z0-9_-]*$/, 'a name of lower-case letters, digits, - and _, starting with a letter');
const ms = z.number().int().min(0).max(120_000);

// Only sysctls of the network stack: they are per network namespace, so setting them in a
// lab host never touches the host machine.
export const sysctlName = z
  .string()
  .regex(/^net\.(ipv4|ipv6|core|netfilter)\.[a-z0-9_.]+$/, 'a per-namespace network sysctl such as net.ipv4.tcp_rfc1337');
const sysctlValue = z.union([z.string(), z.number().int()]);
const sysctls = z.record(sysctlName, sysctlValue);

// An iptables rule as its arguments, e.g. "-A FORWARD -p tcp --dport 23 -j REJECT --reject-with tcp-reset".
// An allowlist of what a rule may contain (iptables-rule.ts says why each part is there):
// the rule is split into words (never given to a shell) and loaded as it is.
export const iptablesRule = z
  .string()
  .superRefine((r, ctx) => {
    const problem = ruleProblem(r);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .describe(
    `${RULE_HEAD_TEXT}, given to iptables as its arguments (never to a shell). Words are separated by spaces; ` +
      'a word is letters, digits and - _ . : / , ! = + @ %, or is quoted: "..." or \'...\' (printable ASCII, no expansion; ' +
      'inside "..." a backslash escapes only \\" \\\\ and \\\' ), e.g. -m comment --comment "a b". A quote ends its word. ' +
      'A word starting with - is an option, quoted or not: -x alone (no -ptcp) or --long-name[=value]. ' +
      'Refused: -M, --modprobe and every abbreviation of it (it names a program to run); -t after the start; ' +
      'a path as the value of -m, -j, -g or -p; a word starting with * : or #, or COMMIT (iptables-restore directives); ' +
      `newlines and other control characters; over ${RULE_MAX_CHARS} characters.`,
  );

// A ruleset file, relative to the scenario file (the firewall-test command takes the same files).
const rulesetFile = z.string().min(1).regex(/^[^\0\n]+$/, 'a file name, relative to the scenario file');

const when = z
  .union([id, z.array(id).min(1)])
  .optional()
  .describe('variants this step runs in (default: all); the top-level variant is "cause"');

// A step's deadline: a run whose step takes longer fails there, saying what it waited for.
const timeoutMs = z
  .number().int().min(1).max(600_000)
  .optional()
  .describe('how long this step may take before the run fails (default 10000 ms; a sleep: its ms on top; waitFor: how long to wait for the event, default 5000)');

// K keeps each kind a literal type, so Step is a discriminated union that narrows on `do`.
const step = <K extends string, T extends z.ZodRawShape>(kind: K, shape: T, description: string) =>
  z.strictObject({ do: z.literal(kind), when, ...shape }).extend({ timeoutMs }).describe(description);

export const Step = z.discriminatedUnion('do', [
  step('listen', {
    host: endHost,
    port,
    backlog: z.number().int().min(0).max(4096).optional(),
    accept: z.boolean().default(true).describe('false: the listener never accepts, so connections stay in its accept queue'),
    read: z.boolean().default(true).describe('false: accepted connections are never read (pauseOnConnect)'),
    id: id.optional().describe('name of this listener (default: "port<PORT>")'),
  }, 'open a listening socket'),
  step('connect', {
    id: id.describe('the name of this connection, used by later steps and expectations'),
    host: endHost,
    to: endHost,
    port,
    localPort: z.strictObject({
      offset: z.number().int().min(0).max(SLOT_SIZE - 1),
    }).optional().describe(
      'pin the local port, as an offset into the lab\'s own ephemeral port range (each lab has its own, so two labs at once never share a 4-tuple): { offset: 1 } is the range\'s first port + 1',
    ),
    keepAliveMs: ms.optional().describe('turn on TCP keepalive with this idle time'),
    wait: z.boolean().default(true).describe('wait until the connect succeeds or fails'),
  }, 'open a connection (active open)'),
  step('send', {
    host: endHost,
    conn: id,
    bytes: z.number().int().min(1).max(1_000_000).default(1),
  }, 'write bytes on a connection'),
  step('close', {
    host: endHost,
    conn: id,
    how: z.enum(['end', 'destroy', 'abort']).describe('end: FIN after the data; destroy: close(); abort: linger 0 (resetAndDestroy)'),
  }, 'close one end of a connection'),
  step('resume', { host: endHost, conn: id }, 'read everything received on a connection, and all that follows'),
  step('stopListener', { host: endHost, listener: id }, 'close a listening socket'),
  step('waitFor', {
    host: endHost,
    conn: id,
    event: z.enum(['connected', 'accepted', 'data', 'end', 'error', 'closed']),
  }, 'wait until one end of a connection sees an event'),
  step('sleep', { ms }, 'wait'),
  step('sysctl', { host, name: sysctlName, value: sysctlValue }, 'set a sysctl inside one lab host'),
  step('iptables', { host, rule: iptablesRule }, 'add or delete one iptables rule inside one lab host'),
  step('killSocket', { host: endHost, conn: id }, 'destroy the kernel socket of one end of a connection (ss -K): no FIN, no RST leaves the host by itself'),
  step('forge', {
    host: endHost,
    conn: id,
    flags: z.string().regex(/^[SAFRPU.]+$/, 'TCP flags as tcpdump writes them, e.g. "P." or "R"'),
    seq: z.number().int().min(0).max(0xffffffff).default(1).describe('sequence number (RFC 1337 shows any out-of-window value works)'),
    ack: z.number().int().min(0).max(0xffffffff).default(1),
    bytes: z.number().int().min(0).max(1400).default(1),
  }, 'send a segment through a raw socket, as if from this end of the connection'),
  step('snapshot', { host: endHost, name: id }, 'record the TCP sockets of a host (like ss -tan), for socket expectations'),
  step('announce', {
    address: z.string().regex(/^10\.0\.2\.([2-9]|[1-9]\d|1\d\d|2[0-4]\d|25[0-4])$/, 'an address of the server\'s network, 10.0.2.2 to 10.0.2.254'),
  }, 'a third host (impostor) on the server\'s network takes this address and announces it by gratuitous ARP (twice, 1.2 s apart: past the neighbour locktime); the lab then holds the impostor and net B is a switch'),
]);
export type Step = z.infer<typeof Step>;
export type StepKind = Step['do'];

// seq and ack of a RST: a number, or a relation to the flow's own packets (the grammar is
// the vocabulary's SEQ_RELATION; the verifier resolves it with parseSeqRelation).
export const seqRelation = z.union([
  z.number().int().min(0).max(0xffffffff),
  z.string().regex(SEQ_RELATION, SEQ_RELATION_WORDS),
]);

export const RstExpectation = z.strictObject({
  from: z.enum([...HOSTS, ...EXTRA_HOSTS]).describe('the host that really sent it (judged from the capture points it crossed; impostor: a third host on the server\'s network)'),
  to: endHost,
  posingAs: endHost.optional().describe('the IP source address it carries, where that is not its sender'),
  conn: id.optional().describe('the connection it belongs to'),
  flags: z.enum(['R', 'R.']).optional(),
  seq: seqRelation.optional(),
  ack: seqRelation.optional(),
  answers: z.enum(['SYN', 'ACK', 'data', 'FIN']).optional().describe('the kind of segment it answered'),
  newMac: z.boolean().optional().describe('true: its source MAC, where first seen, differs from every earlier packet of its IP source there (another box took the address)'),
  seenAt: z.array(capturePoint).optional(),
  notSeenAt: z.array(capturePoint).optional(),
  // partialRecord: z.record with enum keys would demand a TTL for every capture point.
  ttlAt: z.partialRecord(capturePoint, z.number().int().min(0).max(255)).optional(),
  count: z.number().int().min(1).default(1),
  reason: z.string().regex(/^[A-Z_]+$/).optional().describe('the kernel reason from the tcp:tcp_send_reset tracepoint; NONE: no event for it (no TCP socket made it, e.g. a netfilter REJECT)'),
});
export type RstExpectation = z.infer<typeof RstExpectation>;

export const Expectation = z.union([
  z.strictObject({ rst: RstExpectation }),
  z.strictObject({ noRst: z.strictObject({}).describe('no RST at any capture point') }),
  z.strictObject({
    app: z.strictObject({
      host: endHost,
      conn: id,
      saw: z.enum(['connected', 'accepted', 'data', 'end', 'closed', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE']).optional(),
      notSaw: z.enum(['connected', 'accepted', 'data', 'end', 'closed', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE']).optional(),
    }).describe('what the application on one end of a connection saw'),
  }),
  z.strictObject({
    counter: z.strictObject({
      host,
      name: z.string().regex(/^(Tcp|TcpExt|Ip|IpExt|Udp)[A-Za-z0-9]+$/, 'an nstat counter name such as TcpExtListenOverflows'),
      delta: z.number().int().optional(),
      min: z.number().int().optional(),
    }).describe('how much a kernel counter (nstat) of one host grew during the run'),
  }),
  z.strictObject({
    sockets: z.strictObject({
      host: endHost,
      snapshot: id,
      state: z.enum(['ESTABLISHED', 'SYN-SENT', 'SYN-RECV', 'FIN-WAIT-1', 'FIN-WAIT-2', 'TIME-WAIT', 'CLOSE-WAIT', 'LAST-ACK', 'LISTEN', 'CLOSING']),
      conn: id.optional(),
      count: z.number().int().min(0),
    }).describe('how many sockets in a state a snapshot held'),
  }),
]);
export type Expectation = z.infer<typeof Expectation>;

export const Variant = z.strictObject({
  summary: z.string().min(1),
  sysctls: z.partialRecord(host, sysctls).optional().describe('merged over the top-level sysctls'),
  expect: z.array(Expectation).min(1),
});

// What `rstlab explain` and the HTML report teach beyond the explanation: which of the
// nine common causes the scenario covers (causes.ts), how it provokes it, how it looks in
// Wireshark, how to tell it from the causes it resembles, and how it is found and fixed.
export const Teach = z.strictObject({
  causes: z.array(z.enum(CAUSE_IDS)).min(1).describe('which of the nine common causes this scenario covers'),
  provokes: z.string().min(1).describe('how this scenario makes the cause happen, in plain words'),
  wireshark: z.strictObject({
    filters: z.array(z.strictObject({ filter: z.string().min(1), shows: z.string().min(1) })).min(1).describe('Wireshark display filters and what each one shows'),
    looksLike: z.string().min(1).describe('what the cause looks like in the packet list'),
  }),
  resembles: z.array(z.strictObject({ scenario: id, tell: z.string().min(1) })).default([]).describe('the causes it can be mistaken for, and how to tell them apart'),
  inPractice: z.strictObject({
    find: z.string().min(1).describe('how it is found on real machines: logs, counters, rules'),
    fix: z.string().min(1).describe('how it is fixed or avoided'),
  }),
});
export type Teach = z.infer<typeof Teach>;

export const Scenario = z.strictObject({
  name: id,
  summary: z.string().min(1).describe('one line: what happens'),
  explanation: z.string().min(1).describe('the cause in plain words, the RFC sections, how to recognise it in a capture'),
  rfc: z.array(z.string()).optional(),
  sysctls: z.partialRecord(host, sysctls).optional().describe('set in each lab host before the first step'),
  firewall: z
    .strictObject({
      rules: z.array(iptablesRule).default([]),
      iptables: rulesetFile.optional().describe('an iptables-save file (what iptables-restore reads), loaded into the firewall host before `rules`'),
      nftables: rulesetFile.optional().describe('an nft ruleset file (what nft -f reads), loaded into the firewall host before `rules`; for both families (an inet table covers both)'),
      ip6tables: rulesetFile.optional().describe('an ip6tables-save file (what ip6tables-restore reads), loaded instead of `iptables` in a run over IPv6 (--family 6)'),
    })
    .superRefine((f, ctx) => {
      if (f.iptables !== undefined && f.nftables !== undefined) ctx.addIssue({ code: 'custom', path: ['nftables'], message: 'name one ruleset file: iptables or nftables, not both' });
      if (f.ip6tables !== undefined && f.nftables !== undefined) ctx.addIssue({ code: 'custom', path: ['ip6tables'], message: 'an nftables ruleset holds the IPv6 rules too (an inet or ip6 table): name ip6tables only beside iptables' });
    })
    .optional(),
  ipv6: z
    .strictObject({
      skip: z.string().min(1).describe('why this cause has no IPv6 form, or behaves differently over IPv6: shown whenever a run over IPv6 skips it'),
    })
    .optional()
    .describe('how the scenario runs over IPv6 (--family 6): by default exactly as over IPv4, its rules through ip6tables with lab addresses as their IPv6 twins'),
  capture: z.array(capturePoint).min(1).default([...CAPTURE_POINTS]),
  steps: z.array(Step).min(1),
  expect: z.array(Expectation).min(1),
  variants: z.record(id, Variant).default({}),
  teach: Teach.optional().describe('teaching notes: rstlab explain NAME prints them'),
});
export type ScenarioFile = z.infer<typeof Scenario>;
