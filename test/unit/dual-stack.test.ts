// Dual stack, the pure parts: the IPv6 vocabulary (addresses, subnets, paths), a scenario's
// rules in their IPv6 form, plans over IPv6 (every scenario runs or says why not), the
// firewall-test rows of each family, the per-family message and the IPv6 coverage warnings.
import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../src/errors.js';
import { familyWarnings, ipv6Coverage, noteFamilies } from '../../src/firewall/families.js';
import { parseExpectations, type PlannedRow } from '../../src/firewall/expectations.js';
import { mismatchText, type Judgement } from '../../src/firewall/judge.js';
import { loadRuleset, type Ruleset } from '../../src/firewall/ruleset.js';
import { junitXml } from '../../src/report/json.js';
import { ruleInFamily } from '../../src/scenario/family.js';
import { listScenarios } from '../../src/scenario/load.js';
import { parseScenario } from '../../src/scenario/parse.js';
import { planFor } from '../../src/scenario/plan.js';
import { icmpLabel } from '../../src/verify/format.js';
import { HOST_SYSCTLS, hostBatches, noDadSysctls, portRangeSysctls } from '../../src/lab/backend.js';
import {
  PATH_TO_A, PATH_TO_B, TOPOLOGY6, addressOf, familyOf, firewallAddresses, formatIPv6, hostOf, inSubnet, ipv6Bits, pathOf,
} from '../../src/vocabulary.js';
import { ROOT } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'rstlab-v6-unit-'));

describe('dual stack: the vocabulary', () => {
  it('knows each host by its IPv6 address too, and the nets as /64s', () => {
    expect(hostOf('fd00:1::2')).to.equal('client');
    expect(hostOf('fd00:2::2')).to.equal('server');
    expect(hostOf('fd00:1::1')).to.equal('firewall');
    expect(hostOf('fd00:2::1')).to.equal('firewall');
    expect(hostOf('fd00:2::3')).to.equal(undefined);
    expect(addressOf('server', 6)).to.equal('fd00:2::2');
    expect(addressOf('server')).to.equal('10.0.2.2');
    expect(firewallAddresses(6)).to.deep.equal(['fd00:1::1', 'fd00:2::1']);
    expect(inSubnet('fd00:1::2', TOPOLOGY6.subnets.a)).to.equal(true);
    expect(inSubnet('fd00:2::2', TOPOLOGY6.subnets.a)).to.equal(false);
    expect(inSubnet('fd00:1:0:0:ffff::9', 'fd00:1::/64')).to.equal(true);
    expect(inSubnet('10.0.1.2', 'fd00:1::/64')).to.equal(false);
    expect(familyOf('fd00:1::2')).to.equal(6);
    expect(familyOf('10.0.1.2')).to.equal(4);
  });

  it('takes a packet\'s path from its IPv6 addresses as from IPv4 ones', () => {
    expect(pathOf({ src: 'fd00:1::2', dst: 'fd00:2::2' })).to.equal(PATH_TO_B);
    expect(pathOf({ src: 'fd00:2::2', dst: 'fd00:1::2' })).to.equal(PATH_TO_A);
    expect(pathOf({ src: 'fd00:2::2', dst: 'fd00:1::1' })).to.equal(PATH_TO_A);
  });

  it('writes IPv6 addresses as RFC 5952 says (as tcpdump and the tracepoint do), and reads them back', () => {
    const bytes = (a: string) => {
      const bits = ipv6Bits(a)!;
      return Uint8Array.from({ length: 16 }, (_, i) => Number((bits >> BigInt(8 * (15 - i))) & 0xffn));
    };
    for (const a of ['fd00:1::2', '::1', '::', 'fe80::e807:98ff:fe7c:9f73', '2001:db8:0:1:1:1:1:1', '2001:db8::1:0:0:1']) expect(formatIPv6(bytes(a))).to.equal(a);
    expect(formatIPv6(bytes('fd00:0001:0000:0000:0000:0000:0000:0002'))).to.equal('fd00:1::2');
    expect(ipv6Bits('10.0.1.2')).to.equal(undefined);
    expect(ipv6Bits('1::2::3')).to.equal(undefined);
  });

  it('words ICMPv6 errors as tcpdump does', () => {
    const quoted = { src: 'fd00:1::2', dst: 'fd00:2::2', sport: 26000, dport: 113, seq: 1 };
    expect(icmpLabel({ time: 0, ipVersion: 6, src: 'fd00:1::1', dst: 'fd00:1::2', ttl: 64, type: 1, code: 4, quoted })).to.equal('ICMPv6 port unreachable from fd00:1::1, quoting 26000→113 seq 1');
    expect(icmpLabel({ time: 0, ipVersion: 6, src: 'fd00:1::1', dst: 'fd00:1::2', ttl: 64, type: 1, code: 1, quoted })).to.match(/^ICMPv6 admin prohibited/);
  });
});

describe('dual stack: the lab', () => {
  it('gives every host its IPv6 address without DAD, the end hosts an IPv6 default route, the firewall IPv6 forwarding', () => {
    const b = hostBatches();
    expect(b.client).to.include('addr add fd00:1::2/64 dev eth0 nodad').and.include('route add default via fd00:1::1');
    expect(b.server).to.include('addr add fd00:2::2/64 dev eth0 nodad').and.include('route add default via fd00:2::1');
    expect(b.firewall).to.include('addr add fd00:1::1/64 dev eth0 nodad').and.include('addr add fd00:2::1/64 dev eth1 nodad');
    expect(HOST_SYSCTLS.firewall['net.ipv6.conf.all.forwarding']).to.equal('1');
    expect(HOST_SYSCTLS.client['net.ipv6.conf.all.forwarding']).to.equal('0');
    expect(noDadSysctls(['eth0', 'eth1'])).to.deep.equal({
      'net.ipv6.conf.all.accept_dad': '0', 'net.ipv6.conf.default.accept_dad': '0', 'net.ipv6.conf.eth0.accept_dad': '0', 'net.ipv6.conf.eth1.accept_dad': '0',
    });
    const s = portRangeSysctls({ min: 20000, max: 20999 });
    expect(s.client).to.include({ 'net.ipv4.ip_local_port_range': '20000 20999', 'net.ipv6.conf.default.accept_dad': '0' });
  });
});

describe('dual stack: a scenario\'s rules over IPv6', () => {
  const v6 = (r: string) => ruleInFamily(r, 6);
  it('replaces lab addresses and subnets by their IPv6 twins and ICMP reject types by ICMPv6 ones', () => {
    expect(v6('-A FORWARD -p tcp -s 10.0.1.2 --dport 5000 --tcp-flags ALL ACK -j DROP').ok).to.equal('-A FORWARD -p tcp -s fd00:1::2 --dport 5000 --tcp-flags ALL ACK -j DROP');
    expect(v6('-A OUTPUT -p tcp -d 10.0.2.2/32 -j DROP').ok).to.equal('-A OUTPUT -p tcp -d fd00:2::2/128 -j DROP');
    expect(v6('-A FORWARD -s 10.0.1.0/24,10.0.2.0/24 -j ACCEPT').ok).to.equal('-A FORWARD -s fd00:1::/64,fd00:2::/64 -j ACCEPT');
    expect(v6('-A FORWARD -p tcp --dport 113 -j REJECT --reject-with icmp-port-unreachable').ok).to.equal('-A FORWARD -p tcp --dport 113 -j REJECT --reject-with icmp6-port-unreachable');
    expect(v6('-A FORWARD -m comment --comment "10.0.9.9 stays" -j ACCEPT').ok).to.equal('-A FORWARD -m comment --comment "10.0.9.9 stays" -j ACCEPT');
    expect(v6('-A FORWARD -p tcp --dport 23 -j REJECT --reject-with tcp-reset').ok).to.equal('-A FORWARD -p tcp --dport 23 -j REJECT --reject-with tcp-reset');
    expect(ruleInFamily('-A FORWARD -s 192.168.1.1 -j DROP', 4).ok).to.equal('-A FORWARD -s 192.168.1.1 -j DROP');
  });

  it('refuses, at its word, what has no IPv6 twin', () => {
    const other = v6('-A FORWARD -s 192.168.1.1 -j DROP');
    expect(other.problem?.offset).to.equal(14);
    expect(other.problem?.message).to.match(/192\.168\.1\.1 is not one of the lab's addresses .*ipv6: \{ skip: why \}/);
    expect(v6('-A FORWARD -p icmp -j DROP').problem?.message).to.match(/-p icmp is IPv4's ICMP/);
    expect(v6('-A FORWARD -d 10.0.2.2/24 -j DROP').problem?.message).to.match(/10\.0\.2\.2\/24 is not one of/);
  });
});

describe('dual stack: plans over IPv6', () => {
  it('every scenario has an IPv6 plan for every variant, or says why it is skipped', async () => {
    const all = await listScenarios(`${ROOT}scenarios`);
    const skipped: string[] = [];
    for (const s of all) {
      for (const v of s.variants) {
        const p = planFor(s, v, undefined, 6);
        expect(p.family).to.equal(6);
        if (p.skip !== undefined) {
          skipped.push(`${s.scenario.name} ${v}`);
          expect(p.skip.length, s.scenario.name).to.be.greaterThan(40);
          continue;
        }
        // nothing IPv4 is left in what the run gives ip6tables
        for (const { step } of p.steps) if (step.do === 'iptables') expect(step.rule, s.scenario.name).to.not.match(/\d+\.\d+\.\d+\.\d+/);
        for (const r of p.firewallRules) expect(r.rule, s.scenario.name).to.not.match(/\d+\.\d+\.\d+\.\d+/);
      }
    }
    expect(skipped).to.deep.equal(['duplicate-address cause', 'duplicate-address control']);
  });

  const scenario = (extra: string) => parseScenario(['name: t', 'summary: s', 'explanation: e', extra, 'expect:', '  - noRst: {}', ''].join('\n'), join(tmp, 't.yaml'));
  it('an announce without ipv6.skip, a rule with no IPv6 form and an iptables file without its ip6tables half are bad input over IPv6 only, located', () => {
    const announce = scenario('steps:\n  - do: announce\n    address: 10.0.2.2');
    expect(() => planFor(announce, 'cause', undefined, 4)).to.not.throw();
    expect(() => planFor(announce, 'cause', undefined, 6)).to.throw(InputError, /announce takes an address with gratuitous ARP/);
    const foreign = scenario('firewall:\n  rules:\n    - -A FORWARD -s 192.168.1.1 -j DROP\nsteps:\n  - do: sleep\n    ms: 1');
    try {
      planFor(foreign, 'cause', undefined, 6);
      expect.fail('planned');
    } catch (e) {
      expect(e).to.be.instanceOf(InputError);
      expect((e as InputError).message).to.match(/over IPv6 \(--family 6\): 192\.168\.1\.1 is not one of/);
      expect((e as InputError).line).to.equal(6);
    }
    const file = scenario('firewall:\n  iptables: gw.rules\nsteps:\n  - do: sleep\n    ms: 1');
    expect(planFor(file, 'cause', undefined, 4).firewallRuleset?.format).to.equal('iptables');
    expect(() => planFor(file, 'cause', undefined, 6)).to.throw(InputError, /name an ip6tables-save file as firewall\.ip6tables/);
    const both = scenario('firewall:\n  iptables: gw.rules\n  ip6tables: gw6.rules\nsteps:\n  - do: sleep\n    ms: 1');
    expect(planFor(both, 'cause', undefined, 6).firewallRuleset).to.deep.include({ format: 'ip6tables', file: join(tmp, 'gw6.rules') });
    const skipped = scenario('ipv6:\n  skip: because it is about ARP\nsteps:\n  - do: announce\n    address: 10.0.2.2');
    expect(planFor(skipped, 'cause', undefined, 6).skip).to.equal('because it is about ARP');
  });

  it('JUnit marks a skipped run skipped, with its reason', () => {
    const xml = junitXml([{ name: 'a', variant: 'cause', seconds: 1 }, { name: 'b', variant: 'cause (IPv6)', seconds: 0, skipped: 'no IPv6 form: ARP' }]);
    expect(xml).to.include('skipped="1"').and.include('<skipped message="no IPv6 form: ARP"/>');
  });
});

describe('dual stack: firewall-test rows of each family', () => {
  const rows = (text: string) => parseExpectations(text, 'x.yaml').rows;
  it('plans a row of family both as one row per family, siblings, the IPv6 one named so; the file names the default', () => {
    const r = rows('rows:\n  - { name: telnet, port: 23, expect: reset-by-firewall, family: both }\n  - { port: 22, expect: reach }\n  - { port: 80, expect: reach, family: 6 }\n');
    expect(r.map((x) => [x.index, x.name, x.family, x.sibling])).to.deep.equal([[1, 'telnet', 4, 2], [2, 'telnet (IPv6)', 6, 1], [3, '22/tcp', 4, undefined], [4, '80/tcp (IPv6)', 6, undefined]]);
    expect(r[0]!.line).to.equal(r[1]!.line);
    expect(rows('family: both\nrows:\n  - { port: 22, expect: reach }\n  - { port: 23, expect: drop, family: 4 }\n').map((x) => x.family)).to.deep.equal([4, 6, 4]);
  });

  it('refuses another family, located', () => {
    try {
      rows('rows:\n  - { port: 22, expect: reach, family: 5 }\n');
      expect.fail('parsed');
    } catch (e) {
      expect(e).to.be.instanceOf(InputError);
      expect((e as InputError).message).to.match(/rows\[0\]\.family: 5 is not one of: 4, 6, both/);
      expect((e as InputError).line).to.equal(2);
    }
  });

  const judgement = (observed: Judgement['observed'], passed: boolean): Judgement => ({ observed, phase: 'connect', evidence: 'SYN seen at all 4 points', passed });
  const pair = (expect4: Judgement, expect6: Judgement) => {
    const [a, b] = rows('rows:\n  - { name: telnet, port: 23, expect: reset-by-firewall, family: both }\n') as [PlannedRow, PlannedRow];
    return noteFamilies([{ row: a, judgement: expect4 }, { row: b, judgement: expect6 }]);
  };

  it('says which family\'s ruleset differs, on the half that fails', () => {
    const [v4, v6] = pair(judgement('reset-by-firewall', true), judgement('reach', false));
    expect(v4!.judgement.familyNote).to.equal(undefined);
    expect(v6!.judgement.familyNote).to.equal('port 23: IPv4 reset-by-firewall, IPv6 reach — the IPv6 ruleset lets it through');
    expect(mismatchText(v6!.row, v6!.judgement)).to.equal('port 23: IPv4 reset-by-firewall, IPv6 reach — the IPv6 ruleset lets it through; expected reset-by-firewall, observed reach: SYN seen at all 4 points');
    const [w4] = pair(judgement('drop', false), judgement('reset-by-firewall', true));
    expect(w4!.judgement.familyNote).to.equal('port 23: IPv4 drop, IPv6 reset-by-firewall — the IPv4 ruleset drops it');
    const [x4, x6] = pair(judgement('drop', false), judgement('reach', false));
    expect([x4!.judgement.familyNote, x6!.judgement.familyNote]).to.deep.equal(['port 23: IPv4 drop, IPv6 reach', 'port 23: IPv4 drop, IPv6 reach']);
    const [y4, y6] = pair(judgement('drop', false), judgement('drop', false));
    expect([y4!.judgement.familyNote, y6!.judgement.familyNote]).to.deep.equal([undefined, undefined]);
  });

  const ruleset = (format: Ruleset['format'], text: string): Ruleset => ({ file: `r.${format}`, format, text });
  it('warns when the ruleset covers IPv6 and no row tests it, and when IPv6 rows meet no IPv6 rules', () => {
    const v4rows = parseExpectations('rows:\n  - { port: 22, expect: reach }\n', 'e.yaml');
    const v6rows = parseExpectations('rows:\n  - { port: 22, expect: reach, family: both }\n', 'e.yaml');
    const inet = ruleset('nftables', 'flush ruleset\ntable inet gw {\n}\n');
    const ip = ruleset('nftables', 'flush ruleset\ntable ip gw {\n}\n');
    const ipt = ruleset('iptables', '*filter\nCOMMIT\n');
    expect(ipv6Coverage(inet)).to.equal('r.nftables has an nft inet table');
    expect(ipv6Coverage(ip)).to.equal(undefined);
    expect(familyWarnings(inet, undefined, v4rows)).to.deep.equal(['the ruleset covers IPv6 too (r.nftables has an nft inet table), but no row of e.yaml tests IPv6 (family: 6 or both): IPv6 went untested']);
    expect(familyWarnings(ipt, { ...ruleset('iptables', '*filter\nCOMMIT\n'), file: 'r6.rules', ipv6: true }, v4rows)[0]).to.match(/covers IPv6 too \(--rules6 r6\.rules\).*IPv6 went untested/);
    expect(familyWarnings(ipt, undefined, v4rows)).to.deep.equal([]);
    expect(familyWarnings(inet, undefined, v6rows)).to.deep.equal([]);
    expect(familyWarnings(ipt, undefined, v6rows)[0]).to.match(/IPv6 rows meet a firewall with no IPv6 rules \(no --rules6/);
    expect(familyWarnings(ip, undefined, v6rows)[0]).to.match(/r\.nftables has no inet or ip6 table/);
  });

  it('--rules6 takes an ip6tables-save file, checked like an iptables one; an nft file there is bad input', async () => {
    const f = join(tmp, 'v6.rules');
    writeFileSync(f, '*filter\n-A FORWARD -p tcp --dport 22 --modprobe=/x -j ACCEPT\nCOMMIT\n');
    const refused = await loadRuleset(f, 'ip6tables').then(() => undefined, (e: unknown) => e);
    expect(refused).to.be.instanceOf(InputError);
    expect((refused as InputError).message).to.match(/--modprobe/);
    writeFileSync(f, 'table inet x {\n}\n');
    const nft = await loadRuleset(f, 'ip6tables').then(() => undefined, (e: unknown) => e);
    expect((nft as InputError).message).to.match(/an nft ruleset covers IPv6 itself/);
    writeFileSync(f, '*filter\n:FORWARD DROP [0:0]\nCOMMIT\n');
    expect(await loadRuleset(f, 'ip6tables')).to.deep.include({ format: 'iptables', ipv6: true });
  });
});
