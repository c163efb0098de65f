// The duplicate-address scenario on both backends: a lab with an impostor on the server's
// network (a bridge), the cause and its control, the control judged by the cause's
// expectations (must fail: the verifier can), ARP in the captures and the ladder, diagnose
// naming it from firewall-b's capture, and nothing of these labs left behind.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { leftovers, rstlab, runDirOf } from '../helpers.js';

function dockerUp(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

for (const backend of ['netns', 'docker'] as const) {
  describe(`duplicate-address on ${backend}`, function () {
    this.timeout(300_000);
    let dir: string;
    before(function () {
      // Docker is part of this machine's set-up (README); where it is missing the test says so by failing.
      if (backend === 'docker') expect(dockerUp(), 'the Docker daemon').to.equal(true);
      dir = mkdtempSync(join(tmpdir(), `rstlab-dup-${backend}-`));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('cause: the impostor resets the client\'s next segment; ARP in the ladder; diagnose names it at firewall-b', async () => {
      const r = await rstlab('run', 'duplicate-address', '--backend', backend, '--runs-dir', dir);
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      expect(r.stdout).to.match(/ARP who-has 10\.0\.2\.2 tell 10\.0\.2\.2 \(gratuitous\) from 02:00:00:00:0b:02/);
      expect(r.stdout).to.match(/RST #1 sent by impostor as server/);
      const run = runDirOf(r.stdout);
      const d = await rstlab('diagnose', '--json', join(run, 'firewall-b.pcap'));
      expect(d.code, d.stderr).to.equal(0);
      const rst = (JSON.parse(d.stdout) as { files: { rsts: { cause: string; mac: { changed: boolean } }[] }[] }).files[0]!.rsts;
      expect(rst.map((x) => x.cause)).to.deep.equal(['duplicate-address']);
      expect(rst[0]!.mac.changed).to.equal(true);
    });

    it('control: an announcement for an unused address; no RST', async () => {
      const r = await rstlab('run', 'duplicate-address', '--variant', 'control', '--backend', backend, '--runs-dir', dir);
      expect(r.code, r.stdout + r.stderr).to.equal(0);
      expect(r.stdout).to.match(/ARP who-has 10\.0\.2\.9 tell 10\.0\.2\.9 \(gratuitous\)/);
    });

    it('the control judged by the cause\'s expectations fails (exit 1)', async () => {
      const r = await rstlab('run', 'duplicate-address', '--variant', 'control', '--expect-of', 'cause', '--backend', backend, '--runs-dir', dir);
      expect(r.code, r.stdout + r.stderr).to.equal(1);
    });

    it('leaves nothing of its labs behind', () => {
      const left = leftovers();
      expect(left.namespaces).to.deep.equal([]);
      expect(left.tcpdumps).to.deep.equal([]);
      // this backend's own labs: their ids are in the runs' reports
      const ids = readdirSync(dir).filter((d) => existsSync(join(dir, d, 'report.json'))).map((d) => (JSON.parse(readFileSync(join(dir, d, 'report.json'), 'utf8')) as { labId: string }).labId);
      expect(ids.length).to.equal(3);
      for (const id of ids) {
        expect(readdirSync('/run/netns').filter((n) => n.startsWith(`rstlab-${id}-`))).to.deep.equal([]);
        if (backend === 'docker') expect(execFileSync('docker', ['ps', '-aq', '--filter', `label=rstlab.lab=${id}`], { encoding: 'utf8' }).trim()).to.equal('');
      }
    });
  });
}
