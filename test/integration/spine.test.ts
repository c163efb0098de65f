// The lab spine end to end on real netns labs: closed-port and its control through the
// CLI, the pcaps tcpdump itself reads back, exit codes, and teardown on every path.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, ROOT, fixture, leftovers, rstlab, runDirOf, startCli, until } from '../helpers.js';

const POINTS = ['client', 'firewall-a', 'firewall-b', 'server'];

function tcpdumpRead(file: string): string {
  return execFileSync('tcpdump', ['-nn', '-r', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

function expectNothingLeft(): void {
  expect(leftovers()).to.deep.equal({ namespaces: [], tcpdumps: [] });
}

describe('the lab spine (netns)', function () {
  this.timeout(60_000);

  // No global cleanup here: other labs may be up on this machine. leftovers() counts only
  // the labs of the CLIs this test starts (their owner records, test/helpers.ts).

  it('closed-port: the server kernel\'s RST, proven from the captures, exit 0', async () => {
    const r = await rstlab('run', 'closed-port');
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    expect(r.stdout).to.match(/R\.\s+7→\d+ seq 1 ack 1 .*RST #1 sent by server/); // relative, as Wireshark shows them
    expect(r.stdout).to.contain('PASS closed-port cause');
    const dir = runDirOf(r.stdout);
    expect(readdirSync(dir).sort()).to.include.members([...POINTS.map((p) => `${p}.pcap`), 'report.json']);
    const client = tcpdumpRead(join(dir, 'client.pcap'));
    expect(client).to.match(/IP 10\.0\.2\.2\.7 > 10\.0\.1\.2\.\d+: Flags \[R\.\], seq 0, ack \d+/);
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    expect(report.passed).to.equal(true);
    expect(report.rsts).to.have.length(1);
    expect(report.rsts[0].from).to.equal('server');
    expectNothingLeft();
  });

  it('closed-port control: a listener, no RST in any pcap, exit 0', async () => {
    const r = await rstlab('run', 'closed-port', '--variant', 'control');
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    const dir = runDirOf(r.stdout);
    for (const p of POINTS) {
      const text = tcpdumpRead(join(dir, `${p}.pcap`));
      expect(text, p).to.match(/Flags \[S\]/);
      expect(text, p).not.to.match(/Flags \[R/);
    }
    expectNothingLeft();
  });

  it('the control judged by the cause\'s expectations fails: exit 1', async () => {
    const r = await rstlab('run', 'closed-port', '--variant', 'control', '--expect-of', 'cause');
    expect(r.code, r.stdout + r.stderr).to.equal(1);
    expect(r.stdout).to.contain('FAIL closed-port control');
    expect(r.stdout).to.match(/no RST from server to client at all|expected 1 matching RST, saw 0/);
    expectNothingLeft();
  });

  it('a wrong expectation fails with expected vs seen and the scenario line: exit 1', async () => {
    const file = fixture('scenarios/closed-port-wrong-seq.yaml');
    const r = await rstlab('run', file);
    expect(r.code, r.stdout + r.stderr).to.equal(1);
    expect(r.stdout).to.contain(`${file}:12`); // the rst expectation's line
    expect(r.stdout).to.match(/seq: expected 1, seen 0/);
    expect(r.stdout).to.contain('FAIL closed-port-wrong-seq');
    expectNothingLeft();
  });

  it('--json prints the report for machines', async () => {
    const r = await rstlab('run', 'closed-port', '--json');
    expect(r.code, r.stderr).to.equal(0);
    const report = JSON.parse(r.stdout);
    expect(report).to.include({ scenario: 'closed-port', variant: 'cause', passed: true, backend: 'netns' });
    expect(report.rsts[0]).to.include({ flags: 'R.', from: 'server', to: 'client', seq: 0 });
    expect(Object.keys(report.pcaps)).to.deep.equal(POINTS);
  });

  it('every bad scenario file: a located error, exit 2, no lab built', async () => {
    const dir = fixture('bad-scenarios');
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).to.be.at.least(10);
    for (const f of files) {
      const r = await rstlab('run', join(dir, f));
      expect(r.code, `${f}: ${r.stderr}`).to.equal(2);
      expect(r.stderr, f).to.contain(`${join(dir, f)}:`);
      expect(r.stderr, f).to.match(/\.yaml:\d+:\d+: /);
      expectNothingLeft();
    }
  });

  it('a firewall rule iptables refuses: exit 2 naming the file, the lab taken down', async () => {
    const file = fixture('scenarios/refused-rule.yaml');
    const r = await rstlab('run', file);
    expect(r.code, r.stdout + r.stderr).to.equal(2);
    expect(r.stderr).to.contain(`${file}:7:7: iptables-restore in firewall refused this rule`);
    expectNothingLeft();
  });

  it('an unknown scenario name or variant: exit 2', async () => {
    expect((await rstlab('run', 'no-such-cause')).code).to.equal(2);
    const r = await rstlab('run', 'closed-port', '--variant', 'nope');
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/control/);
    expectNothingLeft();
  });

  it('a missing tool: exit 3 with what to install, no lab built', async () => {
    const { spawnSync } = await import('node:child_process');
    // no PATH: tcpdump and nsenter (in /usr/bin) cannot be found
    const r = spawnSync(process.execPath, [CLI, 'run', 'closed-port'], { cwd: ROOT, env: { PATH: '/nonexistent' }, encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(3);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.match(/missing .*tcpdump.*apt-get install .*tcpdump/);
    expectNothingLeft();
  });

  it('no privileges: exit 3 saying to run as root', async () => {
    const { spawnSync } = await import('node:child_process');
    // root with every capability dropped: it can still read the project, not build a lab
    const r = spawnSync('setpriv', ['--bounding-set=-all', process.execPath, CLI, 'run', 'closed-port'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(3);
    expect(r.stderr).to.match(/needs root \(CAP_NET_ADMIN.*run as root/);
    expectNothingLeft();
  });

  it('rstlab list shows each scenario with its summary', async () => {
    const r = await rstlab('list');
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/^closed-port\s+\d+\s+A SYN to a port with no listener/m);
  });

  it('two closed-port runs at the same time both pass', async () => {
    const [a, b] = await Promise.all([rstlab('run', 'closed-port'), rstlab('run', 'closed-port')]);
    expect(a.code, a.stdout + a.stderr).to.equal(0);
    expect(b.code, b.stdout + b.stderr).to.equal(0);
    expect(runDirOf(a.stdout)).not.to.equal(runDirOf(b.stdout));
    expectNothingLeft();
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} mid-run takes the lab down: exit 130, nothing left`, async () => {
      const run = startCli(['run', fixture('scenarios/long-sleep.yaml')]);
      await until(() => leftovers().namespaces.length === 3 && leftovers().tcpdumps.length === 4, 20_000, 'the lab and its captures');
      await new Promise((r) => setTimeout(r, 300)); // into the sleep step
      run.child.kill(signal);
      const r = await run.done;
      expect(r.code, r.stderr).to.equal(130);
      expect(r.stderr).to.contain('taking the lab down');
      expectNothingLeft();
    });
  }

  it('kill -9 mid-run leaves a lab that rstlab cleanup removes', async () => {
    const run = startCli(['run', fixture('scenarios/long-sleep.yaml')]);
    await until(() => leftovers().namespaces.length === 3 && leftovers().tcpdumps.length === 4, 20_000, 'the lab and its captures');
    run.child.kill('SIGKILL');
    await run.done;
    expect(leftovers().namespaces).to.have.length(3);
    const r = await rstlab('cleanup');
    expect(r.code, r.stderr).to.equal(0);
    const id = /removed namespace rstlab-(\w+)-client/.exec(r.stdout)?.[1];
    expect(id, r.stdout).to.be.a('string');
    await until(() => leftovers().tcpdumps.length === 0, 5000, 'tcpdump to end');
    expectNothingLeft();
    // (other labs, of live owners, may be listed as left alone; nothing of this one is)
    expect((await rstlab('cleanup')).stdout).to.not.contain(id!);
  });

  it('the host\'s own network is untouched by a run, over either family', async () => {
    // (IPv6 lines of Docker's own interfaces come and go with any container on the machine)
    const notDockers = (text: string) => text.split('\n').filter((l) => !/\b(docker\d+|br-[0-9a-f]+|veth[0-9a-f]+)\b/.test(l)).join('\n');
    const sysctl = (name: string) => readFileSync(`/proc/sys/${name.replaceAll('.', '/')}`, 'utf8');
    const snapshot = () => ({
      routes: execFileSync('ip', ['route'], { encoding: 'utf8' }),
      links: execFileSync('ip', ['-br', 'link'], { encoding: 'utf8' }).replace(/\s+\S+\s*$/gm, ''),
      iptables: execFileSync('iptables-save', [], { encoding: 'utf8' }).replace(/^#.*$/gm, '').replace(/\[\d+:\d+\]/g, ''),
      forward: sysctl('net.ipv4.ip_forward'),
      // IPv6: every lab is dual-stack, and its sysctls and rules are its hosts' only
      ip6tables: execFileSync('ip6tables-save', [], { encoding: 'utf8' }).replace(/^#.*$/gm, '').replace(/\[\d+:\d+\]/g, ''),
      routes6: notDockers(execFileSync('ip', ['-6', 'route'], { encoding: 'utf8' })),
      addresses6: notDockers(execFileSync('ip', ['-6', '-br', 'addr'], { encoding: 'utf8' })),
      ipv6: ['all.forwarding', 'default.forwarding', 'all.accept_dad', 'default.accept_dad', 'all.disable_ipv6', 'default.disable_ipv6'].map((n) => sysctl(`net.ipv6.conf.${n}`)),
    });
    const before = snapshot();
    expect((await rstlab('run', 'closed-port', '--family', 'both')).code).to.equal(0);
    expect(snapshot()).to.deep.equal(before);
    expectNothingLeft(); // of this test's labs: others' may be up meanwhile
  });
});
