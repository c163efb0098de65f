// Dual stack through the real CLI and real labs: the lab's IPv6 is usable at once (no DAD,
// no stall) and its ephemeral port range governs IPv6 too; every scenario and control
// passes over both families on netns (run --all --family both) and over IPv6 on Docker,
// duplicate-address is skipped over IPv6 with its stated reason; a control judged by its
// cause's expectations fails over IPv6 too; the dual-stack firewall examples pass on both
// families, the IPv6-only hole fails exactly its row with the per-family message; and the
// machine's own IPv6 (ip6tables, sysctls, routes, addresses) is what it was. Each test
// looks only at what it made (its runs folders and the lab ids in them).
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsBackend } from '../../src/lab/netns/netns-backend.js';
import { newLabId } from '../../src/lab/backend.js';
import { dockerLeftovers, dockerReachable, leftovers, ROOT, rstlab } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'rstlab-v6-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const example = (f: string) => `${ROOT}examples/firewall/${f}`;
const scenarioNames = readdirSync(`${ROOT}scenarios`).filter((f) => f.endsWith('.yaml')).map((f) => f.replace(/\.yaml$/, ''));

/** Lines about Docker's own interfaces (docker0, its bridges and their veths), which any
 * container on the machine (a docker build, another job's) brings up and down meanwhile. */
const notDockers = (text: string) => text.split('\n').filter((l) => !/\b(docker\d+|br-[0-9a-f]+|veth[0-9a-f]+)\b/.test(l)).join('\n');

/** The machine's own IPv6: ip6tables, routes, addresses, and the sysctls a lab sets in its hosts. */
function hostIpv6(): Record<string, string> {
  const sysctl = (name: string) => readFileSync(`/proc/sys/${name.replaceAll('.', '/')}`, 'utf8').trim();
  return {
    ip6tables: execFileSync('ip6tables-save', { encoding: 'utf8' }).split('\n').filter((l) => !l.startsWith('#')).join('\n').replace(/\[\d+:\d+\]/g, ''),
    routes: notDockers(execFileSync('ip', ['-6', 'route'], { encoding: 'utf8' })),
    addresses: notDockers(execFileSync('ip', ['-6', '-br', 'addr'], { encoding: 'utf8' })),
    ...Object.fromEntries(['net.ipv6.conf.all.forwarding', 'net.ipv6.conf.default.forwarding', 'net.ipv6.conf.all.accept_dad', 'net.ipv6.conf.default.accept_dad', 'net.ipv6.conf.all.disable_ipv6', 'net.ipv6.conf.default.disable_ipv6', 'net.ipv4.ip_local_port_range'].map((n) => [n, sysctl(n)])),
  };
}

/** Lab ids of the run folders under a runs folder. */
function labIdsIn(runsDir: string): string[] {
  if (!existsSync(runsDir)) return [];
  return readdirSync(runsDir).map((d) => join(runsDir, d, 'lab-id')).filter(existsSync).map((f) => readFileSync(f, 'utf8').trim());
}

/** Each scenario line of the --all summary: name, variant, family, verdict. */
function summaryRows(stdout: string): string[][] {
  return stdout.split('\n').filter((l) => /^[a-z-]+ +[a-z-]+ +IPv[46] +(PASS|FAIL|SKIP)\b/.test(l)).map((l) => l.split(/ {2,}/).slice(0, 4));
}

const SKIP_REASON = /duplicate-address: The impostor takes the address with gratuitous ARP, which is IPv4's/;

describe('dual stack', function () {
  this.timeout(240_000);
  let host: Record<string, string>;
  before(() => (host = hostIpv6()));
  afterEach(() => expect(hostIpv6()).to.deep.equal(host));

  describe('the netns lab', () => {
    it('has its IPv6 addresses at once (no DAD: none tentative), IPv6 forwarding in the firewall, and IPv6 connections take the lab\'s own ports', async () => {
      const lab = await netnsBackend.up(newLabId());
      try {
        for (const [h, ifaces] of [['client', ['eth0']], ['firewall', ['eth0', 'eth1']], ['server', ['eth0']]] as const) {
          const addrs = (await lab.exec(h, ['ip', '-6', 'addr'])).stdout;
          expect(addrs, h).to.not.match(/tentative|dadfailed/);
          for (const i of ifaces) expect((await lab.exec(h, ['sysctl', '-n', `net.ipv6.conf.${i}.accept_dad`])).stdout.trim(), `${h} ${i}`).to.equal('0');
        }
        expect((await lab.exec('firewall', ['sysctl', '-n', 'net.ipv6.conf.all.forwarding'])).stdout.trim()).to.equal('1');
        expect((await lab.exec('client', ['sysctl', '-n', 'net.ipv6.conf.all.forwarding'])).stdout.trim()).to.equal('0');
        expect((await lab.exec('server', ['ip', '-6', 'addr', 'show', 'eth0'])).stdout).to.match(/inet6 fd00:2::2\/64 scope global nodad/);
        // The first IPv6 connection of a fresh lab, from the client to a closed port of the
        // server across the firewall: refused at once (a tentative address stalls it ~2 s).
        const refused = `const s=require('net').connect({host:'fd00:2::2',port:7});const t=Date.now();s.on('error',e=>console.log(JSON.stringify({code:e.code,ms:Date.now()-t})))`;
        const r = await lab.exec('client', [process.execPath, '-e', refused]);
        const out = JSON.parse(r.stdout) as { code: string; ms: number };
        expect(out.code, r.stderr).to.equal('ECONNREFUSED');
        expect(out.ms).to.be.below(500);
        // An IPv6 connection's local port is one of the lab's (net.ipv4.ip_local_port_range governs IPv6 too).
        const listener = lab.spawn('server', [process.execPath, '-e', `require('net').createServer((c)=>c.end()).listen(8080,()=>console.log('up'))`]);
        await new Promise<void>((resolve) => listener.stdout.setEncoding('utf8').on('data', (d: string) => d.includes('up') && resolve()));
        const ports: number[] = [];
        for (let i = 0; i < 3; i++) {
          const c = await lab.exec('client', [process.execPath, '-e', `const s=require('net').connect({host:'fd00:2::2',port:8080},()=>{console.log(s.address().family+' '+s.localPort);s.destroy()})`]);
          const [fam, port] = c.stdout.trim().split(' ');
          expect(fam, c.stderr).to.equal('IPv6');
          ports.push(Number(port));
        }
        listener.kill('SIGKILL');
        for (const port of ports) expect(port).to.be.within(lab.ports.min, lab.ports.max);
      } finally {
        await lab.down();
      }
      expect(leftovers().namespaces).to.deep.equal([]);
    });
  });

  it('run --all --family both on netns: every scenario and control passes over IPv4 and IPv6; duplicate-address is skipped over IPv6, saying why', async () => {
    const runsDir = join(tmp, 'all-both');
    const junit = join(tmp, 'all-both.xml');
    const r = await rstlab('run', '--all', '--family', 'both', '--jobs', '4', '--runs-dir', runsDir, '--junit', junit);
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    const rows = summaryRows(r.stdout);
    const variants = rows.length / 2;
    expect(rows.filter(([, , f]) => f === 'IPv4').length).to.equal(variants);
    expect(rows.filter(([, , f, v]) => f === 'IPv4' && v === 'PASS').length).to.equal(variants);
    expect(rows.filter(([, , f, v]) => f === 'IPv6' && v === 'PASS').map(([n]) => n).filter((n, i, a) => a.indexOf(n) === i).sort()).to.deep.equal(scenarioNames.filter((n) => n !== 'duplicate-address').sort());
    expect(rows.filter(([, , , v]) => v === 'SKIP')).to.deep.equal([['duplicate-address', 'cause', 'IPv6', 'SKIP'], ['duplicate-address', 'control', 'IPv6', 'SKIP']]);
    expect(r.stdout).to.match(SKIP_REASON);
    expect(r.stderr).to.match(/SKIP duplicate-address cause over IPv6: The impostor takes the address/);
    expect(r.stdout).to.match(new RegExp(`${rows.length - 2} passed, 0 failed, 2 skipped over IPv6`));
    expect(readFileSync(junit, 'utf8')).to.include('skipped="2"').and.match(/<skipped message="no IPv6 form: The impostor takes/);
    // Neighbour discovery happened (the hosts know each other's MACs) but is no lab traffic:
    // the IPv6 runs' captures hold TCP (and ICMPv6 errors) only.
    const v6dirs = readdirSync(runsDir).filter((d) => d.endsWith('-v6'));
    expect(v6dirs.length).to.equal(variants - 2);
    for (const d of v6dirs) {
      const text = execFileSync('tcpdump', ['-nn', '-r', join(runsDir, d, 'client.pcap')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      expect(text, d).to.not.match(/neighbor (solicitation|advertisement)|router solicitation/i);
      expect(text, d).to.match(/fd00:1::2\.\d+ > fd00:2::2\.\d+|fd00:2::2\.\d+ > fd00:1::2\.\d+/);
    }
    const ids = labIdsIn(runsDir);
    expect(ids.length).to.equal(rows.length - 2);
    expect(existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => ids.some((id) => n.startsWith(`rstlab-${id}-`))) : []).to.deep.equal([]);
  });

  it('over IPv6 the verifier can fail: a control judged by its cause\'s expectations fails (exit 1), naming the IPv6 addresses', async () => {
    for (const name of ['closed-port', 'firewall-reject', 'time-wait-assassination']) {
      const r = await rstlab('run', name, '--variant', 'control', '--expect-of', 'cause', '--family', '6', '--runs-dir', join(tmp, 'crossed'));
      expect(r.code, name + r.stdout + r.stderr).to.equal(1);
      expect(r.stdout, name).to.match(/FAIL \S+ control IPv6/);
    }
    const rst = await rstlab('run', 'firewall-reject', '--family', '6', '--runs-dir', join(tmp, 'crossed'));
    expect(rst.code, rst.stdout + rst.stderr).to.equal(0);
    expect(rst.stdout).to.match(/firewall-reject \(cause, over IPv6\)/);
    expect(rst.stdout).to.match(/RST #1 R\. from firewall \(IP source fd00:2::2 \(server\)\) to client on c1: fd00:2::2\.23 > fd00:1::2\.\d+ seq 0 ack \d+, answering SYN.*seen at firewall-a hlim 64, client hlim 64/);
    expect(rst.stdout).to.match(/PASS firewall-reject cause IPv6/);
  });

  describe('the dual-stack firewall examples', () => {
    const firewallTest = async (name: string, ...args: string[]) => {
      const runsDir = join(tmp, `fw-${name}`);
      const r = await rstlab('firewall-test', '--runs-dir', runsDir, ...args);
      expect(existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => readdirSync(runsDir).some((d) => n.startsWith(`rstlab-${/firewall-test-(\w+)$/.exec(d)?.[1]}-`))) : []).to.deep.equal([]);
      return r;
    };

    it('iptables + ip6tables (--rules6) pass every row over both families', async () => {
      const r = await firewallTest('ipt', '--rules', example('gateway-iptables.rules'), '--rules6', example('gateway-ip6tables.rules'), '--expect', example('gateway-dual-stack.expect.yaml'));
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      expect(r.stdout).to.match(/0 wrong, 20 correct out of 20 rows/);
      expect(r.stdout).to.match(/12 ident \(IPv6\) +unreachable +unreachable +✔ .*ICMPv6 port unreachable from fd00:1::1/);
      expect(r.stdout).to.match(/8 telnet \(IPv6\) +reset-by-firewall +reset-by-firewall +✔ .*IP source fd00:2::2/);
      expect(r.stderr).to.not.match(/warning/);
    });

    it('the nft inet table passes every row over both families', async () => {
      const r = await firewallTest('nft', '--rules', example('gateway-nft.nft'), '--expect', example('gateway-dual-stack.expect.yaml'), '--json');
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      const rows = JSON.parse(r.stdout) as { family: number; passed: boolean }[] | { rows: { family: number; passed: boolean }[] };
      const list = Array.isArray(rows) ? rows : rows.rows;
      expect(list.map((x) => x.family)).to.deep.equal(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? 4 : 6)));
      expect(list.every((x) => x.passed)).to.equal(true);
    });

    it('the classic mistake (telnet closed in iptables, open in ip6tables) fails exactly that row over IPv6, with the per-family message', async () => {
      const r = await firewallTest('hole', '--rules', example('gateway-iptables.rules'), '--rules6', example('gateway-ipv6-hole.rules6'), '--expect', example('gateway-dual-stack.expect.yaml'), '--json');
      expect(r.code, r.stderr).to.equal(1);
      const out = JSON.parse(r.stdout) as { name: string; family: number; passed: boolean; observed: string; familyNote?: string }[] | { rows: { name: string; family: number; passed: boolean; observed: string; familyNote?: string }[] };
      const list = Array.isArray(out) ? out : out.rows;
      expect(list.filter((x) => !x.passed).map((x) => [x.name, x.family, x.observed, x.familyNote])).to.deep.equal([
        ['telnet (IPv6)', 6, 'reach', 'port 23: IPv4 reset-by-firewall, IPv6 reach — the IPv6 ruleset lets it through'],
      ]);
      const table = await firewallTest('hole-table', '--rules', example('gateway-iptables.rules'), '--rules6', example('gateway-ipv6-hole.rules6'), '--expect', example('gateway-dual-stack.expect.yaml'));
      expect(table.code).to.equal(1);
      expect(table.stdout).to.match(/gateway-dual-stack\.expect\.yaml:\d+: row 8 telnet \(IPv6\): port 23: IPv4 reset-by-firewall, IPv6 reach — the IPv6 ruleset lets it through; expected reset-by-firewall, observed reach: SYN seen at all 4 points/);
      expect(table.stdout).to.match(/1 wrong, 19 correct out of 20 rows/);
    });

    it('warns when the ruleset covers IPv6 and no row tests it; --rules6 beside an nft ruleset is bad input before any lab', async () => {
      const one = join(tmp, 'one.expect.yaml');
      writeFileSync(one, 'rows:\n  - { name: ssh, port: 22, expect: reach }\n');
      const r = await firewallTest('warn', '--rules', example('gateway-nft.nft'), '--expect', one);
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      expect(r.stderr).to.match(/warning: the ruleset covers IPv6 too \(.*gateway-nft\.nft has an nft inet table\), but no row of .*one\.expect\.yaml tests IPv6 \(family: 6 or both\): IPv6 went untested/);
      const bad = await rstlab('firewall-test', '--runs-dir', join(tmp, 'fw-bad'), '--rules', example('gateway-nft.nft'), '--rules6', example('gateway-ip6tables.rules'), '--expect', one);
      expect(bad.code).to.equal(2);
      expect(bad.stderr).to.match(/--rules6 is the IPv6 half of an iptables ruleset/);
      expect(existsSync(join(tmp, 'fw-bad'))).to.equal(false);
    });
  });

  describe('on Docker', () => {
    before(function () {
      if (!dockerReachable()) {
        if (process.env.CI) throw new Error('Docker is not reachable, and CI must run the Docker tests');
        this.skip();
      }
    });

    it('run --all --family 6: every scenario and control passes over IPv6, duplicate-address skipped with its reason; no container left', async () => {
      const r = await rstlab('run', '--all', '--family', '6', '--jobs', '4', '--backend', 'docker', '--runs-dir', join(tmp, 'docker-6'));
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      const rows = summaryRows(r.stdout);
      expect(rows.every(([, , f]) => f === 'IPv6')).to.equal(true);
      expect(rows.filter(([, , , v]) => v === 'SKIP').map(([n, v]) => `${n} ${v}`)).to.deep.equal(['duplicate-address cause', 'duplicate-address control']);
      expect(rows.filter(([, , , v]) => v !== 'SKIP').every(([, , , v]) => v === 'PASS')).to.equal(true);
      expect(rows.length).to.be.greaterThan(20);
      expect(r.stdout).to.match(SKIP_REASON);
      expect(dockerLeftovers()).to.deep.equal({ containers: [], networks: [] });
    });
  });
});
