// The parts of rule tracing, coverage and mutants that need no lab: the rules of both
// ruleset forms at their lines (rules.ts), monitor output as recorded on this machine mapped
// to those rules (trace.ts), the deciding rule and chain path (coverage.ts), and the mutants
// made of a file (mutants.ts).
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { ROOT } from '../helpers.js';
import { ruleModel } from '../../src/firewall/rules.js';
import { decisionOf } from '../../src/firewall/coverage.js';
import { echoedHandles, listedHandles, mapHandles, parseTrace } from '../../src/firewall/trace.js';
import { mutantsOf, otherAddress, swapIsEquivalent } from '../../src/firewall/mutants.js';

const read = (f: string) => readFileSync(`${ROOT}examples/firewall/${f}`, 'utf8');
const lineOf = (text: string, s: string) => text.split('\n').findIndex((l) => l.includes(s)) + 1;

describe('firewall rules, traces and mutants', () => {
  it('finds every rule and policy of the iptables example at its line, with its verdict kind', () => {
    const text = read('gateway-iptables.rules');
    const m = ruleModel('iptables', text);
    expect(m.rules).to.have.length(13);
    expect(m.rules.map((r) => r.verdict).join(' ')).to.equal('accept log drop jump reject-reset log accept accept accept accept reject-reset reject-reset reject-icmp');
    const r23 = m.rules.find((r) => r.text.includes('--dport 23'))!;
    expect([r23.line, r23.table, r23.chain]).to.deep.equal([lineOf(text, '--dport 23'), 'filter', 'SERVICES']);
    expect(text.slice(r23.start, r23.end)).to.equal('-A SERVICES -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset');
    const fwd = m.policies.find((p) => p.chain === 'FORWARD')!;
    expect([fwd.line, text.slice(fwd.start, fwd.end)]).to.deep.equal([lineOf(text, ':FORWARD DROP'), 'DROP']);
  });

  it('reads iptables-save -c output (counters before each rule) and -I with a position', () => {
    const m = ruleModel('iptables', '*filter\n:FORWARD DROP [3:180]\n[5:300] -A FORWARD -p tcp --dport 22 -j ACCEPT\n-I FORWARD 1 -p tcp --dport 23 -j DROP\nCOMMIT\n');
    expect(m.rules.map((r) => [r.line, r.verdict, r.insertAt])).to.deep.equal([[3, 'accept', undefined], [4, 'drop', 1]]);
    const notes: string[] = [];
    const handles = mapHandles(m.rules, new Map([['filter FORWARD', [7, 6]]]), notes);
    // the rule inserted first is listed first: handle 7 is the -I line's
    expect([handles.get('filter 7')?.line, handles.get('filter 6')?.line]).to.deep.equal([4, 3]);
  });

  it('reads nft statements as nft does: blocks, anonymous sets over lines, ; separators, comments and strings, top-level add rule', () => {
    const text = [
      'flush ruleset',
      'define ports = { 22, 80 }',
      'table inet t { # a comment with { braces',
      '  set allowed { type ipv4_addr; elements = { 10.0.1.2 } }',
      '  chain fwd {',
      '    type filter hook forward priority 0; policy drop;',
      '    tcp dport {',
      '      22,',
      '      80',
      '    } accept',
      '    ip saddr @allowed log prefix "a # not a comment {" ; tcp dport 23 reject with tcp reset',
      '    counter \\',
      '      drop',
      '  }',
      '  chain other { tcp dport 25 drop; }',
      '}',
      'add rule inet t other tcp dport 26 accept',
      '',
    ].join('\n');
    const m = ruleModel('nftables', text);
    expect(m.rules.map((r) => [r.line, r.chain, r.verdict])).to.deep.equal([
      [7, 'fwd', 'accept'], [11, 'fwd', 'log'], [11, 'fwd', 'reject-reset'], [12, 'fwd', 'drop'], [15, 'other', 'drop'], [17, 'other', 'accept'],
    ]);
    expect(m.rules[1]!.text).to.equal('ip saddr @allowed log prefix "a # not a comment {"');
    expect(m.policies).to.have.length(1);
    expect(text.slice(m.policies[0]!.start, m.policies[0]!.end)).to.equal('drop');
    expect(m.hooks.get('inet t fwd')).to.equal('forward');
  });

  // recorded on this machine: xtables-monitor --trace with the iptables example loaded
  const xt = [
    'PACKET: 2 b3beeac5 IN=eth0 MACSRC=ae:30:b3:2b:8a:fd MACDST=6a:e1:9b:aa:95:1b MACPROTO=0800 SRC=10.0.1.2 DST=10.0.2.2 LEN=60 TOS=0x0 TTL=64 ID=28347 DF SPORT=50023 DPORT=23 SYN ',
    ' TRACE: 2 b3beeac5 raw:PREROUTING:rule:0x2:CONTINUE  -4 -t raw -A PREROUTING -p tcp -m multiport --ports 50000:50100 -j TRACE',
    ' TRACE: 2 b3beeac5 raw:PREROUTING:policy:ACCEPT ',
    'PACKET: 2 b3beeac5 IN=eth0 OUT=eth1 MACSRC=ae:30:b3:2b:8a:fd MACDST=6a:e1:9b:aa:95:1b MACPROTO=0800 SRC=10.0.1.2 DST=10.0.2.2 LEN=60 TOS=0x0 TTL=63 ID=28347 DF SPORT=50023 DPORT=23 SYN ',
    ' TRACE: 2 b3beeac5 filter:FORWARD:rule:0x8:JUMP:SERVICES  -4 -t filter -A FORWARD -i eth0 -o eth1 -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j SERVICES',
    ' TRACE: 2 b3beeac5 filter:SERVICES:rule:0xf:DROP  -4 -t filter -A SERVICES -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset',
    'PACKET: 2 89820aa5 IN=eth0 MACSRC=ae:30:b3:2b:8a:fd MACDST=6a:e1:9b:aa:95:1b MACPROTO=0800 SRC=10.0.1.2 DST=10.0.2.2 LEN=60 TOS=0x0 TTL=64 ID=19002 DF SPORT=50025 DPORT=25 SYN ',
    'PACKET: 2 89820aa5 IN=eth0 OUT=eth1 MACSRC=ae:30:b3:2b:8a:fd MACDST=6a:e1:9b:aa:95:1b MACPROTO=0800 SRC=10.0.1.2 DST=10.0.2.2 LEN=60 TOS=0x0 TTL=63 ID=19002 DF SPORT=50025 DPORT=25 SYN ',
    ' TRACE: 2 89820aa5 filter:FORWARD:rule:0x8:JUMP:SERVICES  -4 -t filter -A FORWARD -i eth0 -o eth1 -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j SERVICES',
    ' TRACE: 2 89820aa5 filter:FORWARD:rule:0xa:CONTINUE  -4 -t filter -A FORWARD -j LOG --log-prefix "fw-drop: "',
    ' TRACE: 2 89820aa5 filter:FORWARD:policy:DROP ',
  ].join('\n');
  // recorded: nft -a list table ip filter after iptables-restore of the example
  const listing = [
    'table ip filter { # handle 1',
    '\tchain INPUT { # handle 1', '\t\ttype filter hook input priority filter; policy accept;', '\t}',
    '\tchain FORWARD { # handle 2', '\t\ttype filter hook forward priority filter; policy drop;',
    ...[5, 6, 7, 8, 9, 10].map((h) => `\t\tcounter packets 0 bytes 0 accept # handle ${h}`), '\t}',
    '\tchain OUTPUT { # handle 3', '\t\ttype filter hook output priority filter; policy accept;', '\t}',
    '\tchain SERVICES { # handle 4', ...[11, 12, 13, 14, 15, 16, 17].map((h) => `\t\ttcp dport 1 accept # handle ${h}`), '\t}',
    '}',
  ].join('\n');

  it('maps an iptables trace to the file: a rule of a user-defined chain by its handle, a chain policy by its line', () => {
    const text = read('gateway-iptables.rules');
    const m = ruleModel('iptables', text);
    const notes: string[] = [];
    const handles = mapHandles(m.rules, listedHandles('filter', listing), notes);
    expect(notes).to.deep.equal([]);
    const packets = parseTrace('iptables', xt, m, handles);
    expect(packets.map((p) => [p.sport, p.dport, p.flags])).to.deep.equal([[50023, 23, 2], [50025, 25, 2]]);
    const telnet = decisionOf(m, 'gw.rules', packets[0]!.events)!;
    expect(telnet).to.deep.include({ line: lineOf(text, '--dport 23'), path: ['FORWARD', 'SERVICES'], policy: false, verdict: 'drop' });
    const smtp = decisionOf(m, 'gw.rules', packets[1]!.events)!;
    expect(smtp).to.deep.include({ line: lineOf(text, ':FORWARD DROP'), text: 'FORWARD policy DROP', policy: true, path: ['FORWARD'] });
    // the TRACE rule and the raw table are rstlab's, not the user's: no event of them
    expect(packets[0]!.events.some((e) => e.table === 'raw')).to.equal(false);
  });

  it('maps an nft trace by the handles nft echoed while loading', () => {
    const text = read('gateway-nft.nft');
    const m = ruleModel('nftables', text);
    const echo = [
      'add rule inet gateway services tcp dport { 22, 80, 443, 8080 } accept # handle 4',
      'add rule inet gateway services handle 4 tcp dport 23 reject with tcp reset # handle 5',
      'add rule inet gateway services handle 5 tcp dport 3306 reject with tcp reset # handle 6',
      'add rule inet gateway services tcp dport 113 reject # handle 7',
      ...[8, 9, 10, 11, 12].map((h) => `add rule inet gateway forward x # handle ${h}`),
    ].join('\n');
    const notes: string[] = [];
    const handles = mapHandles(m.rules, echoedHandles(echo), notes);
    expect(notes).to.deep.equal([]);
    const trace = [
      'trace id 0150a804 ip rstlab_trace pre packet: iif "eth0" ether saddr ae:30:b3:2b:8a:fd ether daddr 6a:e1:9b:aa:95:1b ip saddr 10.0.1.2 ip daddr 10.0.2.2 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 55085 ip length 60 tcp sport 50023 tcp dport 23 tcp flags == syn tcp window 64240 ',
      'trace id 0150a804 ip rstlab_trace pre rule tcp sport 50000-50100 meta nftrace set 1 # handle 2 (verdict continue)',
      'trace id 0150a804 ip rstlab_trace pre policy accept ',
      'trace id 0150a804 inet gateway forward packet: iif "eth0" oif "eth1" ether saddr ae:30:b3:2b:8a:fd ether daddr 6a:e1:9b:aa:95:1b ip saddr 10.0.1.2 ip daddr 10.0.2.2 ip dscp cs0 ip ecn not-ect ip ttl 63 ip id 55085 ip protocol tcp ip length 60 tcp sport 50023 tcp dport 23 tcp flags == syn tcp window 64240 ',
      'trace id 0150a804 inet gateway forward rule iifname "eth0" oifname "eth1" tcp flags syn / syn,ack ct state new jump services # handle 10 (verdict jump services)',
      'trace id 0150a804 inet gateway services rule tcp dport 23 reject with tcp reset # handle 5 (verdict drop)',
    ].join('\n');
    const packets = parseTrace('nftables', trace, m, handles);
    expect(packets).to.have.length(1);
    expect(packets[0]!.events).to.have.length(2);
    expect(decisionOf(m, 'gw.nft', packets[0]!.events)).to.deep.include({ line: lineOf(text, 'tcp dport 23 reject'), path: ['forward', 'services'] });
  });

  it('a chain whose rules the kernel lists differently from the file is said so, not guessed', () => {
    const m = ruleModel('iptables', read('gateway-iptables.rules'));
    const notes: string[] = [];
    const handles = mapHandles(m.rules, new Map([['filter SERVICES', [11, 12]]]), notes);
    expect(handles.size).to.equal(0);
    expect(notes.join('\n')).to.match(/chain filter SERVICES: the file has 7 rules, the kernel lists 2/);
  });

  it('mutants of the iptables example: the plausible one-rule mistakes, none of a logging rule, no swap no packet could tell apart', () => {
    const text = read('gateway-iptables.rules');
    const m = ruleModel('iptables', text);
    const mutants = mutantsOf(m, { file: 'gw.rules', format: 'iptables', text });
    const at = (s: string) => mutants.filter((x) => x.line === lineOf(text, s)).map((x) => x.change);
    expect(at('--dport 23')).to.deep.equal(['REJECT tcp-reset → DROP', 'REJECT tcp-reset → icmp-port-unreachable', 'rule deleted', 'port 23 → 24']);
    expect(at('--dport 113')).to.deep.equal(['REJECT icmp → tcp-reset', 'REJECT icmp → DROP', 'rule deleted', 'port 113 → 114']);
    expect(at('fw-drop')).to.deep.equal([]);
    expect(at('INVALID -j LOG')).to.deep.equal([]);
    expect(at(':FORWARD DROP')).to.deep.equal(['FORWARD policy DROP → ACCEPT']);
    const drop23 = mutants.find((x) => x.change === 'REJECT tcp-reset → DROP' && x.line === lineOf(text, '--dport 23'))!;
    expect(drop23.text.split('\n')[lineOf(text, '--dport 23') - 1]).to.equal('-A SERVICES -p tcp -m tcp --dport 23 -j DROP');
    expect(drop23.text.split('\n').filter((l, i) => l !== text.split('\n')[i])).to.have.length(1);
    // every neighbouring pair is the same verdict (22/80 ACCEPT), or could never meet one packet
    // (disjoint ports 8080/23, states INVALID/NEW, --syn/! --syn): a swap would be an equivalent mutant
    expect(mutants.filter((x) => x.kind === 'swap')).to.deep.equal([]);
    const [invalidDrop, jump, notSyn] = ['INVALID -j DROP', '-j SERVICES', '! --syn'].map((s) => m.rules.find((r) => r.text.includes(s))!);
    expect(swapIsEquivalent('iptables', invalidDrop!, jump!)).to.equal(true);
    expect(swapIsEquivalent('iptables', jump!, notSyn!)).to.equal(true);
    // every mutant differs from the file and from every other
    expect(new Set(mutants.map((x) => x.text)).size).to.equal(mutants.length);
  });

  it('mutants of nft rules: verdicts, ports in a set, addresses at the prefix, swaps of rules that can meet', () => {
    const text = 'table ip t {\n\tchain c {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tip saddr 10.0.1.0/24 tcp dport { 22, 80 } accept\n\t\ttcp dport 80 drop\n\t}\n}\n';
    const m = ruleModel('nftables', text);
    const changes = mutantsOf(m, { file: 't.nft', format: 'nftables', text }).map((x) => x.change);
    expect(changes).to.deep.equal(['accept → drop', 'rule deleted', 'port 22 → 23', 'address 10.0.1.0/24 → 10.0.2.0/24', 'drop → accept', 'rule deleted', 'port 80 → 81', 'swapped with the next rule (line 5)', 'c policy accept → drop']);
    expect(swapIsEquivalent('nftables', m.rules[0]!, m.rules[1]!)).to.equal(false);
    expect(otherAddress('192.168.0.0', 16)).to.equal('192.169.0.0');
    expect(otherAddress('10.0.2.2', 32)).to.equal('10.0.2.3');
  });
});
