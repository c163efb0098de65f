// firewall-test's rule tracing, coverage and mutants through the real CLI, with real netns
// labs: each row names the rule that decided it at the right line of the user's own file
// (a chain policy, a rule of a user-defined chain, a REJECT; iptables and nft forms), in the
// table, the JSON and the JUnit; coverage lists exactly the rules no row can reach (known
// by construction); --min-coverage fails the run below its figure; --mutants kills the
// tcp-reset → DROP mutant by the row that expects the firewall's reset, and a mutant of a
// rule no row reaches survives, whether decided from the trace or run in a lab. Every test
// looks only at what it made (its own runs folder and the lab ids named in it), and the
// machine's own rulesets are what they were after each.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ROOT, fixture, rstlab, startCli, type CliResult } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'rstlab-fwtrace-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const example = (f: string) => `${ROOT}examples/firewall/${f}`;

function hostRulesets(): string {
  const iptables = execFileSync('iptables-save', { encoding: 'utf8' }).split('\n').filter((l) => !/^# (Generated|Completed) /.test(l)).join('\n');
  const nft = execFileSync('nft', ['-s', 'list', 'ruleset'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return iptables + nft;
}

let runs = 0;
async function firewallTest(...args: string[]): Promise<CliResult & { labIds: string[] }> {
  const runsDir = join(tmp, `runs-${++runs}`);
  const r = await rstlab('firewall-test', '--runs-dir', runsDir, ...args);
  const labIds = existsSync(runsDir) ? readdirSync(runsDir).map((d) => /firewall-(?:test|mutants)-(\w+)$/.exec(d)?.[1]).filter((x): x is string => !!x) : [];
  return { ...r, labIds };
}
const leftOf = (labIds: string[]) => (existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => labIds.some((id) => n.startsWith(`rstlab-${id}-`))) : []);

/** The 1-based line of the (only) line of `file` that contains `text`. */
function lineOf(file: string, text: string): number {
  const lines = readFileSync(file, 'utf8').split('\n');
  const found = lines.flatMap((l, i) => (l.includes(text) ? [i + 1] : []));
  expect(found, `${text} in ${file}`).to.have.length(1);
  return found[0]!;
}

interface RowJson { row: number; name: string; passed: boolean; decidedBy?: { file: string; line: number | null; text: string; chainPath: string[]; policy: boolean } }
interface Out {
  rows: RowJson[];
  coverage: { reached: number; total: number; percent: number };
  rules: { file: string; line: number; text: string; rows: number[] }[];
  mutants?: { file: string; line: number; kind: string; change: string; status: string; killedBy: { row: number; name: string; observed: string }[]; rowsRun: number[] }[];
  mutationScore?: { killed: number; survived: number; percent: number };
}

describe('firewall-test: the deciding rule, coverage and mutants (netns)', function () {
  this.timeout(180_000);
  let host: string;
  before(() => (host = hostRulesets()));
  afterEach(() => expect(hostRulesets()).to.equal(host));

  const forms = [
    {
      rules: 'gateway-iptables.rules', expectFile: 'gateway-iptables.expect.yaml',
      policy: [':FORWARD DROP', 'FORWARD policy DROP'], chainRule: '--dport 23 -j REJECT --reject-with tcp-reset', path: ['FORWARD', 'SERVICES'],
      reject: '! --syn -m conntrack --ctstate NEW -j REJECT --reject-with tcp-reset', icmp: '--dport 113 -j REJECT',
    },
    {
      rules: 'gateway-nft.nft', expectFile: 'gateway-nft.expect.yaml',
      policy: ['policy drop;', 'forward policy drop'], chainRule: 'tcp dport 23 reject with tcp reset', path: ['forward', 'services'],
      reject: '!= syn ct state new reject with tcp reset', icmp: 'tcp dport 113 reject',
    },
  ] as const;

  for (const f of forms) {
    it(`${f.rules}: every row names the rule that decided it, at the line of the file (policy, user-defined chain, REJECT), in the table, JSON and JUnit`, async () => {
      const file = example(f.rules);
      const junit = join(tmp, `${f.rules}.xml`);
      const r = await firewallTest('--rules', file, '--expect', example(f.expectFile), '--json', '--junit', junit);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stderr).to.not.match(/not available/);
      const out = JSON.parse(r.stdout) as Out;
      const by = (name: string) => out.rows.find((x) => x.name === name)!.decidedBy!;
      expect(out.rows.every((x) => x.decidedBy && x.decidedBy.line !== null), JSON.stringify(out.rows.map((x) => x.decidedBy))).to.equal(true);
      // a chain policy: the SYN to 25 matches no rule that ends it
      expect(by('smtp')).to.deep.include({ file, line: lineOf(file, f.policy[0]), text: f.policy[1], policy: true });
      expect(by('dns from the server side')).to.deep.include({ line: lineOf(file, f.policy[0]), policy: true });
      // a rule of a user-defined chain, reached by a jump
      expect(by('telnet')).to.deep.include({ line: lineOf(file, f.chainRule), policy: false, chainPath: f.path });
      expect(by('telnet').text).to.include(f.chainRule);
      expect(by('ssh').chainPath).to.deep.equal(f.path);
      // REJECTs: the reset of a forgotten connection (its data, after the idle time) and the ICMP one
      expect(by('https idle past conntrack')).to.deep.include({ line: lineOf(file, f.reject), policy: false });
      expect(by('ident')).to.deep.include({ line: lineOf(file, f.icmp) });
      // the table and the JUnit say the same
      const table = await firewallTest('--rules', file, '--expect', example(f.expectFile));
      expect(table.code).to.equal(0);
      expect(table.stdout).to.match(new RegExp(`4 telnet .*✔  ${f.rules.replace('.', '\\.')}:${lineOf(file, f.chainRule)} .*\\[${f.path.join(' → ')}\\]`));
      expect(table.stdout).to.match(new RegExp(`7 smtp .*✔  ${f.rules.replace('.', '\\.')}:${lineOf(file, f.policy[0])} ${f.policy[1]}`));
      expect(readFileSync(junit, 'utf8')).to.include(`<system-out>decided by ${f.rules}:${lineOf(file, f.chainRule)} `);
      expect(leftOf([...r.labIds, ...table.labIds])).to.deep.equal([]);
    });
  }

  for (const rules of ['coverage.rules', 'coverage.nft']) {
    it(`coverage of ${rules}: exactly the three rules no row can reach are listed, with FILE:LINE and text; --min-coverage fails below the figure`, async () => {
      const file = fixture(`firewall/coverage/${rules}`);
      const expectFile = fixture('firewall/coverage/coverage.expect.yaml');
      const r = await firewallTest('--rules', file, '--expect', expectFile, '--json');
      expect(r.code, r.stderr).to.equal(0);
      const out = JSON.parse(r.stdout) as Out;
      const unreached = out.rules.filter((x) => x.rows.length === 0).map((x) => x.line);
      const known = [lineOf(file, rules.endsWith('.nft') ? 'saddr 192.0.2.0/24' : '-s 192.0.2.0/24'), lineOf(file, 'dport 9999'), lineOf(file, 'udp')];
      expect(unreached).to.deep.equal(known);
      expect(out.coverage).to.deep.equal({ reached: 3, total: 6, percent: 50 });
      expect(out.rows.find((x) => x.name === 'port 10000')!.decidedBy).to.deep.include({ text: rules.endsWith('.nft') ? 'forward policy drop' : 'FORWARD policy DROP', policy: true });
      expect(out.rules.find((x) => x.line === lineOf(file, 'dport 22'))!.rows).to.deep.equal([1]);
      expect(out.rules.find((x) => x.line === lineOf(file, 'dport 23'))!.rows).to.deep.equal([2]);
      // the text report names them too
      const below = await firewallTest('--rules', file, '--expect', expectFile, '--min-coverage', '51');
      expect(below.code, below.stderr).to.equal(1);
      expect(below.stdout).to.match(/0 wrong, 4 correct out of 4 rows/);
      expect(below.stdout).to.include('Coverage: 3 of 6 rules reached by a row (50%)');
      for (const line of known) expect(below.stdout).to.match(new RegExp(`Rules no row reaches \\(3\\)[\\s\\S]*${rules.replace('.', '\\.')}:${line} `));
      expect(below.stderr).to.include('coverage 50% (3 of 6 rules) is below --min-coverage 51%');
      const at = await firewallTest('--rules', file, '--expect', expectFile, '--min-coverage', '50%');
      expect(at.code, at.stderr).to.equal(0);
      expect(leftOf([...r.labIds, ...below.labIds, ...at.labIds])).to.deep.equal([]);
    });
  }

  it('--min-coverage that is not a percentage is bad input (exit 2), before any lab', async () => {
    const r = await firewallTest('--rules', example('gateway-iptables.rules'), '--expect', example('gateway-iptables.expect.yaml'), '--min-coverage', 'most');
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/--min-coverage most: a percentage from 0 to 100/);
    expect(r.labIds).to.deep.equal([]);
  });

  it('--mutants on the iptables example: REJECT tcp-reset → DROP is killed by the row that expects reset-by-firewall; a mutant of the rule no row reaches survives', async () => {
    const file = example('gateway-iptables.rules');
    const r = await firewallTest('--rules', file, '--expect', example('gateway-iptables.expect.yaml'), '--mutants', '--json');
    expect(r.code, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout) as Out;
    const reset = out.mutants!.find((m) => m.line === lineOf(file, '--dport 23 -j REJECT') && m.change === 'REJECT tcp-reset → DROP')!;
    expect(reset.status).to.equal('killed');
    expect(reset.killedBy).to.deep.equal([{ row: 4, name: 'telnet', expected: 'reset-by-firewall', observed: 'drop' }]);
    // ESTABLISHED → DROP: every row whose answer is a reply notices it. (Each mutant has a lab to
    // itself until its rows' answers can no longer count: a SYN-ACK the server retransmits after
    // a second must not cross the next mutant's ruleset and pass for an answer.)
    const established = out.mutants!.filter((m) => m.line === lineOf(file, 'RELATED,ESTABLISHED -j ACCEPT'));
    expect(established.map((m) => [m.change, m.killedBy.map((k) => k.row)])).to.deep.equal([['ACCEPT → DROP', [1, 2, 3, 8, 9]], ['rule deleted', [1, 2, 3, 8, 9]]]);
    // INVALID packets: no row makes one; its DROP flipped to ACCEPT survives (no row's packet matches it: no lab needed)
    const invalid = out.mutants!.find((m) => m.line === lineOf(file, '--ctstate INVALID -j DROP') && m.kind === 'verdict')!;
    expect(invalid).to.deep.include({ status: 'survived', killedBy: [], rowsRun: [] });
    // logging rules are never mutated
    expect(out.mutants!.filter((m) => m.line === lineOf(file, 'fw-drop') || m.line === lineOf(file, 'INVALID -j LOG'))).to.deep.equal([]);
    expect(out.mutationScore!.killed).to.be.greaterThan(20);
    expect(leftOf(r.labIds)).to.deep.equal([]);
    expect(r.labIds.length).to.be.greaterThan(1);
  });

  it('--mutants on the nft coverage example: reject with tcp reset → drop is killed by its row; mutants of unreached rules survive unless a row has their new port', async () => {
    const file = fixture('firewall/coverage/coverage.nft');
    const r = await firewallTest('--rules', file, '--expect', fixture('firewall/coverage/coverage.expect.yaml'), '--mutants', '--json', '--jobs', '2');
    expect(r.code, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout) as Out;
    const reset = out.mutants!.find((m) => m.line === lineOf(file, 'dport 23 reject') && m.change === 'reject with tcp reset → drop')!;
    expect(reset).to.deep.include({ status: 'killed' });
    expect(reset.killedBy.map((k) => [k.name, k.observed])).to.deep.equal([['telnet', 'drop']]);
    // unreached rules: the UDP port moved and the foreign source's verdict flipped change nothing any row sends
    const udp = out.mutants!.find((m) => m.line === lineOf(file, 'udp dport 53') && m.kind === 'port')!;
    expect(udp).to.deep.include({ change: 'port 53 → 54', status: 'survived', killedBy: [], rowsRun: [] });
    const foreign = out.mutants!.find((m) => m.line === lineOf(file, 'saddr 192.0.2.0/24') && m.kind === 'verdict')!;
    expect(foreign).to.deep.include({ change: 'drop → accept', status: 'survived', killedBy: [], rowsRun: [] });
    // ... but 9999 → 10000 makes the unreached rule match the row to 10000: run against it, and killed
    const port = out.mutants!.find((m) => m.line === lineOf(file, 'dport 9999') && m.kind === 'port')!;
    expect(port).to.deep.include({ change: 'port 9999 → 10000', status: 'killed', rowsRun: [4] });
    expect(port.killedBy.map((k) => [k.name, k.observed])).to.deep.equal([['port 10000', 'reach']]);
    // the 22 → 23 port mutant lets telnet through: two rows notice it
    const ssh = out.mutants!.find((m) => m.line === lineOf(file, 'dport 22 accept') && m.kind === 'port')!;
    expect(ssh.killedBy.map((k) => k.name)).to.deep.equal(['ssh', 'telnet']);
    expect(leftOf(r.labIds)).to.deep.equal([]);
  });

  it('Ctrl-C while mutants run: exit 130, every mutant lab taken down', async () => {
    const runsDir = join(tmp, 'runs-interrupted');
    const { child, done } = startCli(['firewall-test', '--runs-dir', runsDir, '--rules', example('gateway-iptables.rules'), '--expect', example('gateway-iptables.expect.yaml'), '--mutants']);
    const mutantLabs = () => (existsSync(runsDir) ? readdirSync(runsDir).filter((d) => d.includes('-firewall-mutants-')) : []);
    for (let i = 0; i < 300 && mutantLabs().length === 0; i++) await delay(100);
    expect(mutantLabs()).to.not.deep.equal([]);
    await delay(500);
    child.kill('SIGINT');
    const r = await done;
    expect(r.code, r.stderr).to.equal(130);
    expect(r.stderr).to.not.match(/internal error/);
    const labIds = readdirSync(runsDir).map((d) => /firewall-(?:test|mutants)-(\w+)$/.exec(d)?.[1]).filter((x): x is string => !!x);
    expect(leftOf(labIds)).to.deep.equal([]);
  });

  it('--mutants is not run when the matrix fails on the ruleset itself', async () => {
    const r = await firewallTest('--rules', fixture('firewall/coverage/coverage.rules'), '--expect', example('gateway-iptables.expect.yaml'), '--mutants');
    expect(r.code).to.equal(1);
    expect(r.stdout).to.include('Mutants: not run: the matrix fails on the ruleset itself');
    expect(r.labIds).to.have.length(1);
  });
});
