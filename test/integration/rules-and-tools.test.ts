// Rules cannot reach the machine, and a run finds every missing tool before it builds
// anything: through the real CLI, real iptables in private network namespaces, and tools
// hidden in a private mount namespace. Each test looks only at what it made itself (its
// own runs folder, its own unnamed namespaces), so it can run beside other labs.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ruleArgv, restoreText } from '../../src/scenario/iptables-rule.js';
import { BYPASSES } from '../iptables-bypasses.js';
import { CLI, ROOT, cliEnv, fixture, rstlab, type CliResult } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'rstlab-rules-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** rstlab with a runs folder of its own: if it was never made, no run (and no lab) started. */
async function run(file: string, ...more: string[]): Promise<CliResult & { runsDir: string }> {
  const runsDir = join(tmp, `runs-${Math.random().toString(36).slice(2)}`);
  const r = await rstlab('run', file, '--runs-dir', runsDir, ...more);
  return { ...r, runsDir };
}

/** rstlab inside a private mount namespace where these programs are hidden behind /dev/null
 * (not executable): the host's own files are never touched, and the mounts die with it. */
function rstlabWithout(tools: string[], ...args: string[]): CliResult {
  const hide = tools.map((t) => `mount --bind /dev/null "$(readlink -f "$(command -v ${t} || echo /usr/sbin/${t})")"`).join(' && ');
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `${hide} && exec "$0" "$@"`, process.execPath, CLI, ...args], {
    cwd: ROOT, env: cliEnv(), encoding: 'utf8', timeout: 60_000,
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** The rstlab- namespaces that appear during `f` and are still there long after: ours, left behind. */
async function leftBehind(f: () => Promise<unknown>): Promise<string[]> {
  const list = () => (existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith('rstlab-')) : []);
  const before = new Set(list());
  await f();
  let fresh = list().filter((n) => !before.has(n));
  // Other labs on this machine come and go within seconds; a lab we left stays.
  for (let i = 0; i < 100 && fresh.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const now = new Set(list());
    fresh = fresh.filter((n) => now.has(n));
  }
  return fresh;
}

describe('rules cannot reach the machine', function () {
  this.timeout(120_000);

  it('every bypass, in the ruleset and in a step: a located error, exit 2, no run started', async () => {
    for (const [what, rule] of Object.entries(BYPASSES)) {
      for (const where of ['ruleset', 'step'] as const) {
        const file = join(tmp, `bypass-${where}.yaml`);
        const yamlRule = JSON.stringify(rule).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
        writeFileSync(file, [
          'name: bypass',
          'summary: a rule that tries to get past the allowlist',
          'explanation: a test',
          ...(where === 'ruleset'
            ? ['firewall:', '  rules:', `    - ${yamlRule}`, 'steps:', '  - do: sleep', '    ms: 1']
            : ['steps:', '  - do: iptables', '    host: firewall', `    rule: ${yamlRule}`]),
          'expect:',
          '  - noRst: {}',
          '',
        ].join('\n'));
        const r = await run(file);
        const label = `${what} (${where}): ${r.stderr}`;
        expect(r.code, label).to.equal(2);
        expect(r.stderr, label).to.contain(where === 'ruleset' ? `${file}:6:7: firewall.rules[0]: ` : `${file}:7:11: steps[0].rule: `);
        expect(r.stderr.trim().split('\n'), label).to.have.length(1);
        expect(existsSync(r.runsDir), label).to.equal(false);
      }
    }
  });

  it('quoted arguments reach iptables whole, through argv and through iptables-restore', () => {
    const rules = [
      '-A FORWARD -p tcp --dport 23 -m comment --comment "telnet: refused, it\'s old" -j REJECT --reject-with tcp-reset',
      "-A FORWARD -m comment --comment 'a \"step\" rule' -j ACCEPT",
      '-t raw -A PREROUTING -m comment --comment "back\\\\slash" -j NOTRACK',
    ];
    // A private, unnamed network namespace of this test's own: gone when the shell ends.
    const { text } = restoreText(rules.slice(0, 2));
    const argv = ruleArgv(rules[2]!);
    const r = spawnSync('unshare', ['--net', 'sh', '-c', 'iptables-restore -w --noflush && iptables -w "$@" && iptables-save', 'sh', ...argv], { input: text, encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    const saved = r.stdout.split('\n').filter((l) => l.startsWith('-A'));
    expect(saved).to.deep.equal([
      '-A PREROUTING -m comment --comment "back\\\\slash" -j NOTRACK',
      '-A FORWARD -p tcp -m tcp --dport 23 -m comment --comment "telnet: refused, it\\\'s old" -j REJECT --reject-with tcp-reset',
      '-A FORWARD -m comment --comment "a \\"step\\" rule" -j ACCEPT',
    ]);
  });

  it('a scenario whose rules hold quoted comments runs, in the ruleset and in a step: exit 0', async () => {
    let r: CliResult | undefined;
    expect(await leftBehind(async () => (r = await run(fixture('scenarios/quoted-comment.yaml'))))).to.deep.equal([]);
    expect(r!.code, r!.stdout + r!.stderr).to.equal(0);
    expect(r!.stdout).to.contain('PASS quoted-comment');
  });

  it('a rule iptables refuses exits 2 from a step as from the ruleset, located at its line, lab down', async () => {
    const step = fixture('scenarios/refused-step-rule.yaml');
    const ruleset = fixture('scenarios/refused-rule.yaml');
    let s: CliResult | undefined;
    let f: CliResult | undefined;
    expect(await leftBehind(async () => {
      s = await run(step);
      f = await run(ruleset);
    })).to.deep.equal([]);
    expect(s!.code, s!.stderr).to.equal(2);
    const quote = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(s!.stderr).to.match(new RegExp(`^rstlab: ${quote(step)}:12:1: iptables in firewall refused this rule: .*invalid port/service .99999. specified\\n$`));
    expect(f!.code, f!.stderr).to.equal(2);
    expect(f!.stderr).to.match(new RegExp(`^rstlab: ${quote(ruleset)}:7:7: iptables-restore in firewall refused this rule: .*invalid port/service .99999. specified\\n$`));
  });
});

describe('check finds every missing tool before a lab is built', function () {
  this.timeout(120_000);

  it('sees the tools as they are here: exit 0', async () => {
    const r = await rstlab('check');
    expect(r.code, r.stderr).to.equal(0);
  });

  it('a missing sysctl: exit 3, one line naming procps', () => {
    const r = rstlabWithout(['sysctl'], 'check');
    expect(r.code, r.stderr).to.equal(3);
    expect(r.stderr).to.equal('rstlab: the lab could not be built: missing sysctl — install it: apt-get install procps\n');
  });

  it('a missing conntrack: exit 3 for every scenario and for one that sets net.netfilter sysctls; 0 for one that does not', () => {
    const all = rstlabWithout(['conntrack'], 'check');
    expect(all.code, all.stderr).to.equal(3);
    expect(all.stderr).to.equal('rstlab: the lab could not be built: missing conntrack — install it: apt-get install conntrack\n');
    expect(rstlabWithout(['conntrack'], 'check', 'idle-timeout').code).to.equal(3);
    const other = rstlabWithout(['conntrack'], 'check', 'closed-port');
    expect(other.code, other.stderr).to.equal(0);
  });

  it('a missing ss where a socket is killed, and several missing at once: one line with every package', () => {
    const r = rstlabWithout(['ss', 'sysctl', 'conntrack'], 'check');
    expect(r.code, r.stderr).to.equal(3);
    expect(r.stderr).to.equal('rstlab: the lab could not be built: missing sysctl, conntrack, ss — install them: apt-get install procps conntrack iproute2\n');
    expect(rstlabWithout(['ss'], 'check', 'syn-conflict').code).to.equal(3);
    expect(rstlabWithout(['ss'], 'check', 'firewall-reject').code).to.equal(0);
  });

  it('a run that needs a missing tool: exit 3 before its run folder (or a lab) exists', () => {
    const runsDir = join(tmp, 'runs-missing-conntrack');
    const r = rstlabWithout(['conntrack'], 'run', 'firewall-invalid-state', '--runs-dir', runsDir);
    expect(r.code, r.stderr).to.equal(3);
    expect(r.stderr).to.contain('missing conntrack');
    expect(existsSync(runsDir)).to.equal(false);
  });
});
