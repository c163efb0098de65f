// `rstlab diagnose` on captures it was not written for: each cause made a second way, in
// namespaces, addresses and interface names of its own, with plain Python sockets
// (test/fixtures/diagnose/make-fixtures.py), through the real CLI. Also: the decoder's
// link types (SLL, SLL2, pcapng, IPv6), a file that is not a capture (exit 2) and a
// capture cut short (diagnosed to its end, with a warning).
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixture, rstlab } from '../helpers.js';

interface Rst {
  cause: string;
  sentBy: string;
  sender: string;
  candidates: { cause: string; confidence: number }[];
  cannotTell: string | null;
  evidence: string[];
  nextChecks: string;
  context: string[];
}
interface Out {
  files: { file: string; truncated: boolean; warnings: string[]; rsts: Rst[] }[];
}

async function diagnose(...files: string[]): Promise<Out> {
  const r = await rstlab('diagnose', '--json', ...files);
  expect(r.code, r.stderr).to.equal(0);
  return JSON.parse(r.stdout) as Out;
}

/** Each fixture's cause, and who sent its RST where the wire can tell (unknown where it cannot). */
const FIXTURES: Record<string, { client: string; server: string | null }> = {
  'closed-port': { client: 'endpoint', server: 'endpoint' },
  // At the client a well-forged REJECT has nothing to compare its TTL with; it never reaches the server.
  'firewall-reject': { client: 'unknown', server: null },
  'syn-conflict': { client: 'endpoint', server: 'endpoint' },
  'accept-queue-overflow': { client: 'endpoint', server: 'endpoint' },
  'half-open-restart': { client: 'endpoint', server: 'endpoint' },
  'firewall-invalid-state': { client: 'in-between', server: null },
  'time-wait-assassination': { client: 'endpoint', server: 'endpoint' },
  'app-abort': { client: 'endpoint', server: 'endpoint' },
  'idle-timeout': { client: 'in-between', server: null },
  'keepalive-timeout': { client: 'endpoint', server: 'endpoint' },
  'unread-data-close': { client: 'endpoint', server: 'endpoint' },
};

describe('rstlab diagnose', function () {
  this.timeout(60_000);

  describe('independent fixtures (own namespaces, addresses 10.77.0.0/24 and 172.16.5.0/24, interfaces lan0 and srv0)', () => {
    for (const [cause, sentBy] of Object.entries(FIXTURES)) {
      for (const side of ['client', 'server'] as const) {
        const expected = sentBy[side];
        it(`${cause}, captured on the ${side}'s side: ${expected === null ? 'no RST (it never gets there)' : `${cause}, sent by ${expected}`}`, async () => {
          const out = await diagnose(fixture(`diagnose/${cause}-${side}.pcap`));
          const rsts = out.files[0]!.rsts;
          if (expected === null) {
            expect(rsts).to.deep.equal([]);
            return;
          }
          expect(rsts.length, 'RSTs').to.be.greaterThan(0);
          for (const r of rsts) {
            expect(r.cause, r.evidence.join('\n')).to.equal(cause);
            expect(r.sentBy, r.evidence.join('\n')).to.equal(expected);
            expect(r.evidence.length).to.be.greaterThan(3);
            expect(r.nextChecks).to.not.equal('');
            expect(r.context.some((l) => /Flags \[R\.?\]/.test(l)), 'the RST in its context').to.equal(true);
          }
        });
      }
    }

    it('names both causes where the wire cannot tell them apart (a REJECT that forges well looks like a closed port)', async () => {
      const r = (await diagnose(fixture('diagnose/firewall-reject-client.pcap'))).files[0]!.rsts[0]!;
      expect(r.candidates.map((c) => c.cause)).to.include.members(['firewall-reject', 'closed-port']);
      expect(r.cannotTell).to.match(/closed-port/);
    });

    it('duplicate-address, captured at the router on the server\'s switch: named from the new source MAC and the gratuitous ARP', async () => {
      const r = (await diagnose(fixture('diagnose/duplicate-address-router.pcap'))).files[0]!.rsts;
      expect(r).to.have.length(1);
      expect(r[0]!.cause, r[0]!.evidence.join('\n')).to.equal('duplicate-address');
      expect(r[0]!.sentBy).to.equal('endpoint');
      expect(r[0]!.evidence.join('\n')).to.match(/gratuitous ARP/);
    });

    it('duplicate-address at the client (behind the router, no MAC of the server to compare): a half-open reset, and it says so', async () => {
      const r = (await diagnose(fixture('diagnose/duplicate-address-client.pcap'))).files[0]!.rsts[0]!;
      expect(r.cause).to.equal('half-open-restart');
      expect(r.candidates.map((c) => c.cause)).to.include('duplicate-address');
      expect(r.cannotTell).to.match(/duplicate-address/);
    });

    it('diagnoses several files at once, each on its own', async () => {
      const out = await diagnose(fixture('diagnose/closed-port-client.pcap'), fixture('diagnose/idle-timeout-server.pcap'));
      expect(out.files.map((f) => f.rsts.length)).to.deep.equal([1, 0]);
    });
  });

  describe('link types and IP versions (test/fixtures/pcap: Ethernet, SLL, SLL2, pcapng, IPv6 on loopback)', () => {
    for (const name of ['ipv4-usec.pcap', 'ipv4-nsec.pcapng', 'sll.pcap', 'sll2.pcap', 'ipv6.pcap', 'ipv6.pcapng']) {
      it(`${name}: the refused connect is a closed port, sent by the endpoint (the same TTL as its other packets)`, async () => {
        const r = (await diagnose(fixture(`pcap/${name}`))).files[0]!.rsts;
        expect(r).to.have.length(1);
        expect(r[0]!.cause).to.equal('closed-port');
        expect(r[0]!.sentBy).to.equal('endpoint');
      });
    }
  });

  describe('bad and broken input', () => {
    let dir: string;
    before(() => (dir = mkdtempSync(join(tmpdir(), 'rstlab-diagnose-test-'))));
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('a file that is not a capture: exit 2, one located line, nothing on stdout', async () => {
      const file = join(dir, 'notes.txt');
      writeFileSync(file, 'hello, this is not a pcap\n');
      const r = await rstlab('diagnose', file);
      expect(r.code).to.equal(2);
      expect(r.stdout).to.equal('');
      expect(r.stderr).to.equal(`rstlab: ${file}: not a pcap or pcapng capture (starts with 68656c6c); diagnose reads pcap and pcapng files\n`);
    });

    it('a missing file and an empty file: exit 2', async () => {
      expect((await rstlab('diagnose', join(dir, 'nope.pcap'))).code).to.equal(2);
      writeFileSync(join(dir, 'empty.pcap'), '');
      const r = await rstlab('diagnose', join(dir, 'empty.pcap'));
      expect(r.code).to.equal(2);
      expect(r.stderr).to.match(/not a pcap or pcapng capture \(starts with empty\)/);
    });

    it('a capture cut short: diagnosed up to its end, with a warning', async () => {
      const whole = readFileSync(fixture('diagnose/syn-conflict-client.pcap'));
      const full = (await diagnose(fixture('diagnose/syn-conflict-client.pcap'))).files[0]!;
      expect(full.truncated).to.equal(false);
      const cut = join(dir, 'cut.pcap');
      writeFileSync(cut, whole.subarray(0, whole.length - 10)); // the last record (after the RST) loses its end
      const out = (await diagnose(cut)).files[0]!;
      expect(out.truncated).to.equal(true);
      expect(out.warnings.join(' ')).to.match(/cut short/);
      expect(out.rsts.map((r) => r.cause)).to.deep.equal(full.rsts.map((r) => r.cause));
      const text = await rstlab('diagnose', cut);
      expect(text.code).to.equal(0);
      expect(text.stdout).to.match(/warning: the capture is cut short/);
    });

    it('a capture with no RST says so', async () => {
      const r = await rstlab('diagnose', fixture('diagnose/firewall-invalid-state-server.pcap'));
      expect(r.code).to.equal(0);
      expect(r.stdout).to.match(/No RST in this capture/);
    });
  });
});
