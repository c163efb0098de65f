// rstlab firewall-test through the real CLI, with real labs (netns): the examples pass and
// write JUnit with one testcase per row; a one-rule mutation fails exactly its row; every
// row's expectation changed fails every row; a refused ruleset is exit 2 at its file and
// line; include/--modprobe are refused before any lab; ruleset files in scenarios. After
// every test the machine's own iptables-save, ip6tables-save and nft ruleset are what they were. Each test
// looks only at what it made (its own runs folder, and the lab id named in it).
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, fixture, rstlab, type CliResult } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'rstlab-fw-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const example = (f: string) => `${ROOT}examples/firewall/${f}`;

/** The machine's own rulesets, without what changes by itself: iptables-save's time
 * comments, and counters (nft -s, iptables-save without -c). */
function hostRulesets(): { iptables: string; ip6tables: string; nft: string } {
  const iptables = execFileSync('iptables-save', { encoding: 'utf8' }).split('\n').filter((l) => !/^# (Generated|Completed) /.test(l)).join('\n');
  // the IPv6 half too: --rules6 and the lab's IPv6 rows never reach the machine's ip6tables
  const ip6tables = execFileSync('ip6tables-save', { encoding: 'utf8' }).split('\n').filter((l) => !/^# (Generated|Completed) /.test(l)).join('\n');
  // (its stderr warns that iptables-nft manages some tables: not part of the ruleset)
  const nft = execFileSync('nft', ['-s', 'list', 'ruleset'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return { iptables, ip6tables, nft };
}

let runs = 0;
async function firewallTest(...args: string[]): Promise<CliResult & { runsDir: string; labIds: string[] }> {
  const runsDir = join(tmp, `runs-${++runs}`);
  const r = await rstlab('firewall-test', '--runs-dir', runsDir, ...args);
  const labIds = existsSync(runsDir) ? readdirSync(runsDir).map((d) => /firewall-test-(\w+)$/.exec(d)?.[1]).filter((x): x is string => !!x) : [];
  return { ...r, runsDir, labIds };
}

/** Namespaces of these labs still on the machine. */
const leftOf = (labIds: string[]) => (existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => labIds.some((id) => n.startsWith(`rstlab-${id}-`))) : []);

function copy(name: string, from: string, change: (s: string) => string): string {
  const text = readFileSync(from, 'utf8');
  const changed = change(text);
  expect(changed).to.not.equal(text);
  const f = join(tmp, name);
  writeFileSync(f, changed);
  return f;
}

function junitCases(file: string): { name: string; failed: boolean }[] {
  const xml = readFileSync(file, 'utf8');
  // well-formed XML, by a real parser
  const check = spawnSync('python3', ['-c', 'import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); print(len(d.getElementsByTagName("testcase")))', file], { encoding: 'utf8' });
  expect(check.status, check.stderr).to.equal(0);
  return [...xml.matchAll(/<testcase [^>]*name="([^"]*)"[^>]*?(\/>|>\s*<failure|>\s*<system-out)/g)].map((m) => ({ name: m[1]!, failed: m[2]!.endsWith('<failure') }));
}

describe('firewall-test (netns)', function () {
  this.timeout(120_000);
  let host: ReturnType<typeof hostRulesets>;
  before(() => (host = hostRulesets()));
  afterEach(() => expect(hostRulesets()).to.deep.equal(host));

  for (const [rules, expectFile] of [['gateway-iptables.rules', 'gateway-iptables.expect.yaml'], ['gateway-nft.nft', 'gateway-nft.expect.yaml']] as const) {
    it(`passes examples/firewall/${rules} against ${expectFile}, JUnit has one testcase per row`, async () => {
      const junit = join(tmp, `${rules}.xml`);
      const r = await firewallTest('--rules', example(rules), '--expect', example(expectFile), '--junit', junit);
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      expect(r.stdout).to.match(/0 wrong, 10 correct out of 10 rows/);
      expect(r.stdout).to.match(/8 app without a listener +reset-by-server +reset-by-server +✔ .*kernel reason NO_SOCKET/);
      const cases = junitCases(junit);
      expect(cases).to.have.length(10);
      expect(cases.every((c) => !c.failed)).to.equal(true);
      expect(leftOf(r.labIds)).to.deep.equal([]);
    });
  }

  it('fails exactly the mutated row (iptables: REJECT --reject-with tcp-reset → DROP on port 23), exit 1, with the evidence', async () => {
    const rules = copy('mutant.rules', example('gateway-iptables.rules'), (s) => s.replace('--dport 23 -j REJECT --reject-with tcp-reset', '--dport 23 -j DROP'));
    const junit = join(tmp, 'mutant.xml');
    const r = await firewallTest('--rules', rules, '--expect', example('gateway-iptables.expect.yaml'), '--junit', junit);
    expect(r.code, r.stdout + r.stderr).to.equal(1);
    expect(r.stdout).to.match(/1 wrong, 9 correct out of 10 rows/);
    expect(r.stdout).to.match(/gateway-iptables\.expect\.yaml:\d+: row 4 telnet: expected reset-by-firewall, observed drop: SYN seen at client, firewall-a, not at firewall-b, server; no reply within 1 s/);
    expect(junitCases(junit).filter((c) => c.failed).map((c) => c.name)).to.deep.equal(['row 4: telnet → reset-by-firewall']);
  });

  it('fails exactly the mutated row (nft: reject with tcp reset → drop on port 3306), with --json', async () => {
    const rules = copy('mutant.nft', example('gateway-nft.nft'), (s) => s.replace('tcp dport 3306 reject with tcp reset', 'tcp dport 3306 drop'));
    const r = await firewallTest('--rules', rules, '--expect', example('gateway-nft.expect.yaml'), '--json');
    expect(r.code, r.stderr).to.equal(1);
    const { rows } = JSON.parse(r.stdout) as { rows: { name: string; expected: string; observed: string; evidence: string; passed: boolean; pcaps: string }[] };
    expect(rows.filter((x) => !x.passed).map((x) => [x.name, x.expected, x.observed])).to.deep.equal([['mysql', 'reset-by-firewall', 'drop']]);
    expect(rows[4]!.evidence).to.match(/SYN seen at client, firewall-a, not at firewall-b, server; no reply within 1 s/);
    expect(existsSync(join(rows[0]!.pcaps, 'firewall-b.pcap'))).to.equal(true);
  });

  it('judges every outcome different where the expectation is another one: each row fails', async () => {
    const swap: Record<string, string> = { reach: 'drop', 'reset-by-firewall': 'reach', unreachable: 'reset-by-firewall', drop: 'unreachable', 'reset-by-server': 'drop' };
    const expectFile = copy('wrong.expect.yaml', example('gateway-iptables.expect.yaml'), (s) => s.replace(/expect: ([a-z-]+) \}/g, (_, o: string) => `expect: ${swap[o]} }`));
    const r = await firewallTest('--rules', example('gateway-iptables.rules'), '--expect', expectFile, '--drop-wait', '500ms');
    expect(r.code, r.stderr).to.equal(1);
    expect(r.stdout).to.match(/10 wrong, 0 correct out of 10 rows/);
    // (the row that expected reset-by-server now expects drop, so its port listens: reach)
    for (const [was, now] of Object.entries(swap)) if (was !== 'reset-by-server') expect(r.stdout).to.include(`expected ${now}, observed ${was}`);
    expect(r.stdout).to.match(/row 8 app without a listener: expected drop, observed reach/);
    expect(r.stdout).to.include('no reply within 0.5 s');
  });

  it('a ruleset iptables-restore refuses is exit 2 with its message and FILE:LINE; the lab is down', async () => {
    const rules = copy('typo.rules', example('gateway-iptables.rules'), (s) => s.replace('--dport 80 ', '--dprot 80 '));
    const line = readFileSync(rules, 'utf8').split('\n').findIndex((l) => l.includes('--dprot')) + 1;
    const r = await firewallTest('--rules', rules, '--expect', example('gateway-iptables.expect.yaml'));
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stderr).to.match(new RegExp(`typo\\.rules:${line}:1: iptables-restore refused line ${line}: iptables-restore v[\\d.]+ \\(nf_tables\\): unknown option "--dprot"`));
    expect(r.stderr).to.not.match(/\n\s+at /);
    expect(leftOf(r.labIds)).to.deep.equal([]);
  });

  it('a ruleset nft refuses is exit 2 with nft\'s message at FILE:LINE:COL of the user\'s file', async () => {
    const rules = copy('typo.nft', example('gateway-nft.nft'), (s) => s.replace('tcp dport 23 reject', 'tcp dport 23 rejectt'));
    const line = readFileSync(rules, 'utf8').split('\n').findIndex((l) => l.includes('rejectt')) + 1;
    const r = await firewallTest('--rules', rules, '--expect', example('gateway-nft.expect.yaml'));
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stderr).to.match(new RegExp(`typo\\.nft:${line}:\\d+: nft refused the ruleset: Error: syntax error`));
    expect(r.stderr).to.not.include('/dev/stdin');
    expect(leftOf(r.labIds)).to.deep.equal([]);
  });

  it('refuses include and --modprobe before any lab is built (exit 2, located, no run folder)', async () => {
    const inc = copy('include.nft', example('gateway-nft.nft'), (s) => s.replace('flush ruleset', 'flush ruleset\ninclude "/etc/passwd"'));
    const a = await firewallTest('--rules', inc, '--expect', example('gateway-nft.expect.yaml'));
    expect(a.code).to.equal(2);
    expect(a.stderr).to.match(/include\.nft:4:1: include is not allowed/);
    expect(a.stderr).to.not.match(/root:x:0/);
    expect(existsSync(a.runsDir)).to.equal(false);
    const mod = copy('modprobe.rules', example('gateway-iptables.rules'), (s) => s.replace('-A SERVICES -p tcp -m tcp --dport 22 -j ACCEPT', '-A SERVICES -p tcp -m tcp --dport 22 --modprobe=/tmp/evil -j ACCEPT'));
    const b = await firewallTest('--rules', mod, '--expect', example('gateway-iptables.expect.yaml'));
    expect(b.code).to.equal(2);
    expect(b.stderr).to.match(/modprobe\.rules:\d+:\d+: .*--modprobe is not allowed/);
    expect(existsSync(b.runsDir)).to.equal(false);
  });

  it('a bad expectation file is exit 2, located, before any lab', async () => {
    const bad = copy('bad.expect.yaml', example('gateway-iptables.expect.yaml'), (s) => s.replace('expect: drop }', 'expect: dorp }'));
    const r = await firewallTest('--rules', example('gateway-iptables.rules'), '--expect', bad);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/bad\.expect\.yaml:\d+:\d+: rows\[6\]\.expect: "dorp" is not one of: .* \(did you mean "drop"\?\)/);
    expect(existsSync(r.runsDir)).to.equal(false);
  });

  for (const format of ['iptables', 'nftables']) {
    it(`runs a scenario whose firewall names a ruleset file (${format})`, async () => {
      const runsDir = join(tmp, `scenario-${format}`);
      const r = await rstlab('run', fixture(`scenarios/firewall-${format}-file.yaml`), '--runs-dir', runsDir);
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      expect(r.stdout).to.match(/RST #1 R\. from firewall \(IP source 10\.0\.2\.2/);
    });
  }
});
