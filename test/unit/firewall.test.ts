// firewall-test's pure parts: the ruleset's format and the checks that keep it inside the
// lab, the expectation file's located errors, the ICMP decoder, and the judge on the
// captures of a real run (test/fixtures/firewall/recorded), each row judged right and,
// with its expectation changed, judged different.
import { expect } from 'chai';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeCaptureWithIcmp } from '../../src/capture/pcap.js';
import { InputError } from '../../src/errors.js';
import { parseExpectations, type PlannedRow } from '../../src/firewall/expectations.js';
import { judgeRow, mismatchText } from '../../src/firewall/judge.js';
import { rowPorts } from '../../src/firewall/matrix.js';
import { detectFormat, loadRuleset, nftProblems } from '../../src/firewall/ruleset.js';
import { OUTCOMES } from '../../src/firewall/expect-schema.js';
import { CAPTURE_POINTS, type Observations } from '../../src/vocabulary.js';
import { ROOT, fixture } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'rstlab-fw-unit-'));
const write = (name: string, text: string) => {
  const f = join(tmp, name);
  writeFileSync(f, text);
  return f;
};
const inputError = async (p: Promise<unknown>): Promise<InputError> => {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(InputError);
    return e as InputError;
  }
  throw new Error('expected an InputError');
};
const parseError = (text: string): InputError => {
  try {
    parseExpectations(text, 'x.expect.yaml');
  } catch (e) {
    expect(e).to.be.instanceOf(InputError);
    return e as InputError;
  }
  throw new Error('expected an InputError');
};

describe('firewall-test: rulesets', () => {
  it('recognises iptables-save output and nft rulesets from their content', () => {
    expect(detectFormat(readFileSync(`${ROOT}examples/firewall/gateway-iptables.rules`, 'utf8'))).to.equal('iptables');
    expect(detectFormat(readFileSync(`${ROOT}examples/firewall/gateway-nft.nft`, 'utf8'))).to.equal('nftables');
    expect(detectFormat('# only\n\ntable ip t {\n}\n')).to.equal('nftables');
    expect(detectFormat('hello world\n')).to.equal(undefined);
  });

  it('refuses nft include wherever it is a keyword, at its line and column, and only there', () => {
    expect(nftProblems('table ip t {\n  include "/etc/passwd"\n}\n')).to.deep.equal([
      { line: 2, col: 3, message: 'include is not allowed: nft would read that file on this machine (and echo its lines in errors); put the rules in this one file' },
    ]);
    expect(nftProblems('include "x.nft"\n')[0]).to.include({ line: 1, col: 1 });
    expect(nftProblems('table ip t { chain c { include "/x" } }\n')).to.have.length(1);
    // a comment, a string, a $variable or part of a longer word is no include
    expect(nftProblems('# include "/etc/passwd"\ntable ip t { chain c { log prefix "include " } }\ndefine include_ports = 22\n')).to.deep.equal([]);
    expect(nftProblems('table ip t {\x01}\n')[0]!.message).to.match(/control character U\+0001/);
  });

  it('refuses --modprobe and include before any lab, located in the file, and a file it cannot tell', async () => {
    const ipt = write('m.rules', '*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp --modp /tmp/x -j ACCEPT\nCOMMIT\n');
    const e1 = await inputError(loadRuleset(ipt));
    expect(e1.located()).to.match(/m\.rules:3:\d+: .*--modprobe is not allowed/);
    const nft = write('i.nft', 'table inet t {\n}\ninclude "/etc/passwd"\n');
    expect((await inputError(loadRuleset(nft))).located()).to.match(/i\.nft:3:1: include is not allowed/);
    const odd = write('o.txt', 'hello\n');
    expect((await inputError(loadRuleset(odd))).message).to.match(/--format iptables\|nftables/);
    // forced: an nft file read as iptables-save is refused line by line, not guessed
    expect((await inputError(loadRuleset(nft, 'iptables'))).located()).to.match(/i\.nft:1:1: /);
  });
});

describe('firewall-test: the expectation file', () => {
  it('gives rows with names, sides, idle times and lines', () => {
    const ex = parseExpectations(readFileSync(`${ROOT}examples/firewall/gateway-iptables.expect.yaml`, 'utf8'), 'g.yaml');
    expect(ex.rows).to.have.length(10);
    expect(ex.rows[8]).to.include({ index: 9, port: 443, idleMs: 4000, expect: 'reset-by-firewall', from: 'client', to: 'server' });
    expect(ex.rows[9]).to.include({ from: 'server', to: 'client', port: 53, expect: 'drop' });
    expect(ex.sysctls.firewall).to.deep.equal({ 'net.netfilter.nf_conntrack_tcp_timeout_established': 3 });
    expect(parseExpectations('rows:\n  - { port: 22, idle: 500ms, expect: reach }\n', 'x').rows[0]!.name).to.equal('22/tcp idle 500ms');
  });

  it('locates every mistake as file:line:col, with did-you-mean', () => {
    // both problems of the row: the misspelt key, and the key it lacks
    const typo = parseError('rows:\n  - { port: 22, expct: reach }\n').located();
    expect(typo).to.match(/^x\.expect\.yaml:2:\d+: rows\[0\]/);
    expect(typo).to.match(/^(x\.expect\.yaml:2:\d+: )?rows\[0\]\.expct: unknown key "expct" \(did you mean "expect"\?\)/m);
    expect(parseError('rows:\n  - { port: 22, expect: rech }\n').located()).to.match(/^x\.expect\.yaml:2:\d+: rows\[0\]\.expect: "rech" is not one of: .*\(did you mean "reach"\?\)/);
    expect(parseError('rows:\n  - { port: 70000, expect: reach }\n').located()).to.match(/:2:\d+: rows\[0\]\.port: .*at most 65535/);
    expect(parseError('rows:\n  - { port: 22, idle: 4 minutes, expect: reach }\n').located()).to.match(/:2:\d+: rows\[0\]\.idle: .*a duration such as 4s/);
    expect(parseError('rows: []\n').located()).to.match(/rows: .*at least 1 item/);
    expect(parseError('rows:\n  - { port: 22\n').located()).to.match(/YAML syntax|never closed/);
    expect(parseError('sysctls: { firewall: { kernel.panic: 1 } }\nrows:\n  - { port: 22, expect: reach }\n').located()).to.match(/:1:\d+: .*kernel\.panic/);
  });

  it('refuses a port that must both listen and not, at the row that cannot hold', () => {
    const e = parseError('rows:\n  - { port: 8080, expect: reach }\n  - { port: 8080, expect: reset-by-server }\n');
    expect(e.located()).to.match(/:3:\d+: rows\[1\]\.expect: reset-by-server needs port 8080 closed on the server, but row 1 \(8080\/tcp, reach\) needs a listener there/);
    expect(parseError('rows:\n  - { port: 443, idle: 4s, expect: reset-by-server }\n').message).to.match(/cannot expect reset-by-server/);
    // the other side's port is another port: no conflict
    expect(parseExpectations('rows:\n  - { port: 80, expect: reach }\n  - { from: server, port: 80, expect: reset-by-server }\n', 'x').rows).to.have.length(2);
  });
});

describe('firewall-test: ICMP errors in captures', () => {
  it('decodes the ICMP port unreachable a REJECT sent, with the SYN it quotes (tcpdump -v agrees)', () => {
    const { tcp, icmp } = decodeCaptureWithIcmp(readFileSync(fixture('firewall/recorded/client.pcap')));
    expect(tcp.length).to.be.greaterThan(10);
    expect(icmp).to.have.length(1);
    // 10.0.1.1 > 10.0.1.2: ICMP 10.0.2.2 tcp port 113 unreachable; quoting 10.0.1.2.20005 > 10.0.2.2.113: Flags [S], seq 3791023975
    expect(icmp[0]).to.deep.include({ src: '10.0.1.1', dst: '10.0.1.2', ttl: 64, type: 3, code: 3, ipVersion: 4 });
    expect(icmp[0]!.quoted).to.deep.equal({ src: '10.0.1.2', dst: '10.0.2.2', sport: 20005, dport: 113, seq: 3791023975 });
  });
});

describe('firewall-test: the judge, on the captures of a real run', () => {
  const ex = parseExpectations(readFileSync(fixture('firewall/recorded/expect.yaml'), 'utf8'), 'expect.yaml');
  const ports = rowPorts(ex.rows, 20000); // the lab of the recorded run had the range from 20000
  const obs: Observations = { packets: {}, icmp: {}, conns: {}, counters: {}, snapshots: {} };
  for (const p of CAPTURE_POINTS) ({ tcp: obs.packets[p], icmp: obs.icmp![p] } = decodeCaptureWithIcmp(readFileSync(fixture(`firewall/recorded/${p}.pcap`))));
  const judge = (r: PlannedRow) => judgeRow(r, ports.get(r.index)!, obs, 1000);

  it('gives each row the port it ran from', () => {
    expect([...ports.values()]).to.deep.equal(ex.rows.map((_, i) => 20000 + i));
  });

  for (const outcome of OUTCOMES) {
    it(`judges ${outcome} where it happened, and different where another outcome is expected`, () => {
      const rows = ex.rows.filter((r) => r.expect === outcome);
      expect(rows.length).to.be.greaterThan(0);
      for (const r of rows) {
        const j = judge(r);
        expect(j.observed, `${r.name}: ${j.evidence}`).to.equal(outcome);
        expect(j.passed).to.equal(true);
        for (const other of OUTCOMES.filter((o) => o !== outcome)) {
          const wrong = judge({ ...r, expect: other });
          expect(wrong.passed).to.equal(false);
          expect(mismatchText({ ...r, expect: other }, wrong)).to.match(new RegExp(`^expected ${other}, observed ${outcome}: `));
        }
      }
    });
  }

  it('gives the evidence: who answered, where it was and was not seen, TTL, kernel reason', () => {
    const by = (name: string) => judge(ex.rows.find((r) => r.name === name)!).evidence;
    expect(by('telnet')).to.match(/^SYN seen at client, firewall-a, not at firewall-b, server; RST R\. from the firewall \(IP source 10\.0\.2\.2\) .*client ttl 64.*no kernel reason/);
    // (the recorded run kept no trace; the kernel's reason is checked in the integration test)
    expect(by('app without a listener')).to.match(/^SYN seen at all 4 points; RST R\. from server .*seen at all 4 points.*client ttl 63/);
    expect(by('ident')).to.match(/ICMP port unreachable from 10\.0\.1\.1, quoting 20005→113 .*\(type 3 code 3, ttl 64\), from 10\.0\.1\.1 \(firewall\)/);
    expect(by('smtp')).to.equal('SYN seen at client, firewall-a, not at firewall-b, server; no reply within 1 s');
    expect(by('dns from the server side')).to.equal('SYN seen at server, firewall-b, not at firewall-a, client; no reply within 1 s');
  });

  it('judges an idle row by its data after the silence, not by its handshake', () => {
    const idle = ex.rows.find((r) => r.idleMs !== undefined)!;
    const j = judge(idle);
    expect(j).to.include({ observed: 'reset-by-firewall', phase: 'data', passed: true });
    expect(j.evidence).to.match(/^data seen at client, firewall-a, not at firewall-b, server; RST R from the firewall/);
    // the same connection without its idle time is judged by its SYN: reach
    expect(judge({ ...idle, idleMs: undefined, expect: 'reach' })).to.include({ observed: 'reach', phase: 'connect', passed: true });
    // a row whose handshake is all there is cannot pass as an idle row
    const plain = ex.rows.find((r) => r.name === 'smtp')!;
    expect(judge({ ...plain, idleMs: 4000 })).to.include({ observed: 'drop', phase: 'connect', passed: false });
    expect(mismatchText({ ...plain, idleMs: 4000 }, judge({ ...plain, idleMs: 4000 }))).to.match(/observed drop before the idle time \(the handshake itself\)/);
  });

  it('says nothing-sent where no SYN of the row was captured', () => {
    expect(judgeRow(ex.rows[0]!, 1234, obs, 1000)).to.include({ observed: 'nothing-sent', passed: false });
  });
});
