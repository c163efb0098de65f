// explain, list, and the exercises through the real CLI: `run --mystery` names no cause
// anywhere a student can see it (terminal, folder name, all.pcapng, report.html) and
// `reveal` gives it back; bad combinations are bad input (exit 2) and build nothing.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, rstlab } from '../helpers.js';

const scenarios = readdirSync(`${ROOT}scenarios`).filter((f) => f.endsWith('.yaml')).map((f) => f.replace(/\.yaml$/, '')).sort();

describe('rstlab explain and list', function () {
  this.timeout(60_000);

  for (const name of scenarios) {
    it(`explain ${name}: every section, and Wireshark accepts each display filter`, async () => {
      const r = await rstlab('explain', name);
      expect(r.code, r.stderr).to.equal(0);
      for (const section of ['The common cause', 'The cause', 'How this scenario provokes it', 'In Wireshark', 'Telling it from the causes it resembles', 'Finding it in practice', 'Fixing it']) {
        expect(r.stdout, `${name}: ${section}`).to.contain(section);
      }
      const text = readFileSync(`${ROOT}scenarios/${name}.yaml`, 'utf8');
      for (const m of text.matchAll(/^\s+- filter: (".*")$/gm)) {
        const filter = JSON.parse(m[1]!) as string;
        expect(r.stdout).to.contain(filter);
        // tshark compiles the filter before reading: a wrong field name exits non-zero
        execFileSync('tshark', ['-r', `${ROOT}test/fixtures/pcap/ipv6.pcapng`, '-Y', filter], { stdio: 'ignore' });
      }
    });
  }

  it('tshark does refuse a wrong filter (so the check above can fail)', () => {
    expect(() => execFileSync('tshark', ['-r', `${ROOT}test/fixtures/pcap/ipv6.pcapng`, '-Y', 'tcp.no_such_field == 1'], { stdio: 'ignore' })).to.throw();
  });

  it('explain of an unknown scenario is bad input (exit 2)', async () => {
    const r = await rstlab('explain', 'no-such-cause');
    expect(r.code).to.equal(2);
    expect(r.stderr).to.contain('no scenario named "no-such-cause"');
    expect(r.stderr).to.not.match(/\n\s+at /);
  });

  it('list shows each scenario’s causes and the nine common causes with their scenarios', async () => {
    const r = await rstlab('list');
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^closed-port\s+1\s/m);
    expect(r.stdout).to.match(/^firewall-reject\s+5\s/m);
    for (let i = 1; i <= 9; i++) expect(r.stdout).to.match(new RegExp(`^  ${i}\\. .+\\s{2}[a-z]`, 'm'));
    expect(r.stdout).to.not.contain('(no scenario yet)');
  });
});

describe('exercises: run --mystery, --random, reveal', function () {
  this.timeout(120_000);
  const runsDir = mkdtempSync(join(tmpdir(), 'rstlab-mystery-'));
  after(() => rmSync(runsDir, { recursive: true, force: true }));

  it('bad combinations are bad input and build nothing', async () => {
    for (const args of [['run', '--all', '--mystery'], ['run', 'closed-port', '--random'], ['run', 'closed-port', '--mystery', '--json'], ['run', '--random', '--all']]) {
      const r = await rstlab(...args, '--runs-dir', runsDir);
      expect(r.code, args.join(' ')).to.equal(2);
    }
    expect(readdirSync(runsDir)).to.deep.equal([]);
  });

  it('a mystery run names no cause; reveal tells it', async () => {
    const r = await rstlab('run', 'closed-port', '--mystery', '--html', '--runs-dir', runsDir);
    expect(r.code, r.stderr + r.stdout).to.equal(0);
    const dir = /^pcaps: (\S+)$/m.exec(r.stdout)?.[1];
    expect(dir, r.stdout).to.be.a('string');
    const secrets = ['closed-port', 'closed port', 'NO_SOCKET', 'no socket', 'sent by', 'ECONNREFUSED', 'PASS', 'listener'];
    for (const s of secrets) expect(r.stdout, s).to.not.contain(s);
    expect(r.stdout).to.contain('RST #1');
    expect(dir).to.not.contain('closed-port');
    expect(readdirSync(dir!).sort()).to.deep.equal(['all.pcapng', 'client.pcap', 'firewall-a.pcap', 'firewall-b.pcap', 'lab-id', 'report.html', 'server.pcap']);
    for (const s of secrets) expect(readFileSync(join(dir!, 'lab-id'), 'utf8'), `lab-id: ${s}`).to.not.contain(s);
    const html = readFileSync(join(dir!, 'report.html'), 'utf8');
    for (const s of secrets) expect(html, `report.html: ${s}`).to.not.contain(s);
    const comments = execFileSync('tshark', ['-r', join(dir!, 'all.pcapng'), '-Y', 'frame.comment', '-T', 'fields', '-e', 'frame.comment'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(comments.trim().split('\n')).to.deep.equal(['RST #1', 'RST #1', 'RST #1', 'RST #1']);
    const header = execFileSync('capinfos', ['-k', join(dir!, 'all.pcapng')], { encoding: 'utf8' });
    for (const s of secrets) expect(header, `section header: ${s}`).to.not.contain(s);

    const revealed = await rstlab('reveal', dir!);
    expect(revealed.code, revealed.stderr).to.equal(0);
    expect(revealed.stdout).to.contain('closed-port (cause)');
    expect(revealed.stdout).to.contain('RST #1 sent by server (NO_SOCKET)');
    expect(revealed.stdout).to.contain('PASS closed-port cause');
  });

  it('--random --mystery runs the cause of some scenario; reveal names which', async () => {
    const r = await rstlab('run', '--random', '--mystery', '--runs-dir', runsDir);
    expect(r.code, r.stderr + r.stdout).to.equal(0);
    const dir = /^pcaps: (\S+)$/m.exec(r.stdout)![1]!;
    for (const name of scenarios) expect(r.stdout).to.not.contain(name);
    const revealed = await rstlab('reveal', dir);
    expect(revealed.code).to.equal(0);
    const named = scenarios.filter((n) => revealed.stdout.includes(`PASS ${n} cause`));
    expect(named.length, revealed.stdout.slice(-300)).to.equal(1);
  });

  it('reveal of a folder that is not a mystery run is bad input (exit 2)', async () => {
    const r = await rstlab('reveal', runsDir);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.contain('no hidden answer');
    expect(existsSync(runsDir)).to.equal(true);
  });
});
