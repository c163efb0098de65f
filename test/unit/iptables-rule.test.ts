// The allowlist of what an iptables rule may contain, and the one tokenizer behind both the
// `iptables` step's argv and the firewall's iptables-restore text.
import { expect } from 'chai';
import { InputError } from '../../src/errors.js';
import {
  iptablesError, iptablesSaveProblems, parseRule, refusedRule, restoreText, restoreWord, ruleArgv, ruleProblem, tokenize,
} from '../../src/scenario/iptables-rule.js';
import { parseScenario } from '../../src/scenario/parse.js';
import { BYPASSES } from '../iptables-bypasses.js';

describe('iptables rules: the allowlist', () => {
  for (const [what, rule] of Object.entries(BYPASSES)) {
    it(`refuses ${what}`, () => {
      expect(ruleProblem(rule), JSON.stringify(rule)).to.be.a('string');
    });
  }

  it('refuses every prefix of --modprobe, with = or a space', () => {
    for (let n = 1; n <= 'modprobe'.length; n++) {
      const name = `--${'modprobe'.slice(0, n)}`;
      expect(ruleProblem(`-A FORWARD ${name}=/x`), name).to.contain('--modprobe is not allowed');
      expect(ruleProblem(`-A FORWARD ${name} /x`), name).to.contain('--modprobe is not allowed');
    }
  });

  it('says where in the rule the problem is', () => {
    expect(ruleProblem('-A FORWARD -M/tmp/evil')).to.equal('"-M/tmp/evil": a short option is one letter on its own (write -p tcp, not -ptcp; no clusters like -vM) (at character 12 of the rule)');
    expect(ruleProblem('-A FORWARD -j ACCEPT\n*raw')).to.match(/^a rule is one line: .* \(at character 21 of the rule\)$/);
    expect(ruleProblem('rm -rf /')).to.equal('got the string "rm -rf /"; expected an iptables rule starting with -A, -I, -D or -F CHAIN (optionally after -t filter|nat|mangle|raw)');
  });

  it('admits the rules real scenarios use', () => {
    for (const rule of [
      '-A FORWARD -p tcp --dport 23 -j REJECT --reject-with tcp-reset',
      '-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
      '-I FORWARD -i eth0 -p tcp --dport 8080 --tcp-flags ALL ACK -j DROP',
      '-A OUTPUT -p tcp -d 10.0.2.2 --dport 5000 --tcp-flags RST RST -j DROP',
      '-D FORWARD -j DROP',
      '-t nat -A POSTROUTING -o eth1 -j MASQUERADE',
      '-t raw -A PREROUTING -p tcp ! --syn -j NOTRACK',
      '-A FORWARD -m statistic --mode nth --every 2 --packet 0 -j DROP',
      '-A FORWARD -p tcp --dport 1000:2000 -s 10.0.1.0/24 -m mark --mark 0x1/0xff -j ACCEPT',
      '-A FORWARD -i eth+ -j LOG --log-prefix "rstlab: " --log-level 4',
      "-A FORWARD -m comment --comment 'a \"quoted\" word' -j ACCEPT",
      '-A FORWARD\t-j ACCEPT',
    ]) {
      expect(ruleProblem(rule), rule).to.equal(undefined);
    }
  });
});

describe('iptables rules: one tokenizer for argv and iptables-restore', () => {
  it('keeps quoted arguments whole, without their quotes, and expands nothing', () => {
    expect(ruleArgv('-A FORWARD -m comment --comment "a b" -j ACCEPT')).to.deep.equal(['-t', 'filter', '-A', 'FORWARD', '-m', 'comment', '--comment', 'a b', '-j', 'ACCEPT']);
    expect(ruleArgv('-A FORWARD -m comment --comment "it\'s \\"q\\" \\\\ x"')[7]).to.equal('it\'s "q" \\ x');
    expect(ruleArgv("-A FORWARD -m comment --comment '$HOME ${x} `y` \\n'")[7]).to.equal('$HOME ${x} `y` \\n');
    expect(ruleArgv('-A FORWARD -m comment --comment="a b"')[6]).to.equal('--comment=a b');
    expect(ruleArgv('-t nat -A POSTROUTING -j MASQUERADE')).to.deep.equal(['-t', 'nat', '-A', 'POSTROUTING', '-j', 'MASQUERADE']);
    expect(ruleArgv('-A FORWARD -m comment --comment ""')[7]).to.equal('');
  });

  it('tokenize reports where a word goes wrong', () => {
    expect(tokenize('-A "x')).to.deep.equal({ problem: { offset: 3, message: 'this double quote is never closed' } });
    expect(tokenize("-A 'x' y", 'restore').problem?.message).to.contain('single quotes do not quote in iptables-restore');
  });

  it('writes iptables-restore words bare where it can, else in double quotes with \\ and " escaped', () => {
    expect(restoreWord('ACCEPT')).to.equal('ACCEPT');
    expect(restoreWord('a b')).to.equal('"a b"');
    expect(restoreWord('it\'s "q" \\')).to.equal('"it\'s \\"q\\" \\\\"');
    expect(restoreWord('')).to.equal('""');
    expect(restoreWord('--comment=a b')).to.equal('"--comment=a b"');
  });

  it('restore text: one section per table, and each line knows its rule', () => {
    const { text, ruleOfLine } = restoreText([
      '-A FORWARD -m comment --comment "a b" -j ACCEPT',
      '-t raw -A PREROUTING -j NOTRACK',
      '-A FORWARD -j DROP',
    ]);
    expect(text).to.equal('*filter\n-A FORWARD -m comment --comment "a b" -j ACCEPT\n-A FORWARD -j DROP\nCOMMIT\n*raw\n-A PREROUTING -j NOTRACK\nCOMMIT\n');
    expect(ruleOfLine).to.deep.equal([0, 0, 2, 0, 1, 1, 1]);
    expect(refusedRule('iptables-restore v1.8.9 (nf_tables): unknown option "--dprot"\nError occurred at line: 3\n', ruleOfLine)).to.equal(2);
    expect(refusedRule('something else', ruleOfLine)).to.equal(undefined);
  });

  it('the text it writes reads back as the same words', () => {
    const rule = '-A FORWARD -m comment --comment "it\'s \\"q\\" \\\\ x" -j ACCEPT';
    const line = restoreText([rule]).text.split('\n')[1]!;
    const back = parseRule(line, 'restore');
    expect(back.ok?.args).to.deep.equal(ruleArgv(rule).slice(2));
  });

  it('iptables errors in one line, without the advice', () => {
    expect(iptablesError("iptables v1.8.9 (nf_tables): invalid port/service `99999' specified\nTry `iptables -h' or 'iptables --help' for more information.\n"))
      .to.equal("iptables v1.8.9 (nf_tables): invalid port/service `99999' specified");
  });
});

describe('iptables rules: whole iptables-save files', () => {
  it('admits what iptables-save writes', () => {
    const saved = [
      '# Generated by iptables-save v1.8.9 (nf_tables) on Sat Nov 22 04:00:00 2026',
      '*filter',
      ':INPUT ACCEPT [0:0]',
      ':FORWARD DROP [12:720]',
      ':SVC - [0:0]',
      '-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
      '-A FORWARD -m comment --comment "it\\\'s \\"q\\" x" -j ACCEPT',
      '-A FORWARD -i eth0 -o eth1 -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset',
      'COMMIT',
      '# Completed on Sat Nov 22 04:00:00 2026',
      '',
    ].join('\n');
    expect(iptablesSaveProblems(saved)).to.deep.equal([]);
  });

  it('finds each problem at its line and column', () => {
    const file = [
      '*filter', //                                   1
      ':FORWARD ACCEPT [0:0]', //                     2
      '-A FORWARD -p tcp -M /tmp/evil -j ACCEPT', //  3
      "-A FORWARD -m comment --comment 'a b'", //     4
      '-t raw -A PREROUTING -j DROP', //              5
      'COMMIT', //                                    6
      '*evil', //                                     7
      'rm -rf /', //                                  8
      '-A FORWARD -j ACCEPT\r', //                    9
    ].join('\n');
    const problems = iptablesSaveProblems(file);
    expect(problems.map((p) => [p.line, p.col])).to.deep.equal([[3, 19], [4, 33], [5, 1], [7, 2], [8, 1], [9, 21]]);
    expect(problems[0]!.message).to.contain('-M is --modprobe');
    expect(problems[1]!.message).to.contain('single quotes');
  });
});

describe('iptables rules in scenario files: located errors', () => {
  // A YAML double-quoted scalar: JSON's escapes, plus DEL and C1 controls, which YAML wants escaped too.
  const yamlString = (s: string) => JSON.stringify(s).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const scenario = (rule: string, where: 'ruleset' | 'step') =>
    [
      'name: bypass', //                                                     1
      'summary: a rule that tries to get past the allowlist', //             2
      'explanation: a test', //                                              3
      ...(where === 'ruleset'
        ? ['firewall:', '  rules:', `    - ${yamlString(rule)}`, 'steps:', '  - do: sleep', '    ms: 1'] //  4..9
        : ['steps:', '  - do: iptables', '    host: firewall', `    rule: ${yamlString(rule)}`]), //   4..7
      'expect:',
      '  - noRst: {}',
      '',
    ].join('\n');

  for (const [what, rule] of Object.entries(BYPASSES)) {
    for (const where of ['ruleset', 'step'] as const) {
      it(`${what} in a ${where}: file:line:col`, () => {
        let err: unknown;
        try {
          parseScenario(scenario(rule, where), 'bypass.yaml');
        } catch (e) {
          err = e;
        }
        expect(err).to.be.instanceOf(InputError);
        const e = err as InputError;
        expect([e.line, e.col], e.located()).to.deep.equal(where === 'ruleset' ? [6, 7] : [7, 11]);
        expect(e.located()).to.match(where === 'ruleset' ? /^bypass\.yaml:6:7: firewall\.rules\[0\]: / : /^bypass\.yaml:7:11: steps\[0\]\.rule: /);
      });
    }
  }
});
