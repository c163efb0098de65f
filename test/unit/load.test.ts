import { expect } from 'chai';
import { copyFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../../src/errors.js';
import { listScenarios, loadScenario, type LoadedScenario } from '../../src/scenario/load.js';
import { parseScenario } from '../../src/scenario/parse.js';
import { planFor } from '../../src/scenario/plan.js';
import { Step } from '../../src/scenario/schema.js';
import { scenarioJsonSchema } from '../../src/scenario/write-json-schema.js';

// This file runs from dist/test/unit/; fixtures and the generated schema live in the source tree.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixtures = join(root, 'test/fixtures');
const badDir = join(fixtures, 'bad-scenarios');
const goodFile = join(fixtures, 'good-scenario.yaml');

async function loadError(file: string): Promise<InputError> {
  try {
    await loadScenario(file);
  } catch (err) {
    expect(err).to.be.instanceOf(InputError);
    return err as InputError;
  }
  throw new Error(`${file} loaded without error`);
}

// file → where the one mistake in it is, and words the message must hold.
const BAD: Record<string, [line: number, col: number, ...fragments: string[]]> = {
  'unknown-key.yaml': [10, 5, 'unknown key "bakclog"', 'did you mean "backlog"', 'allowed keys: do, when, host, port, backlog'],
  'typo-in-step-kind.yaml': [10, 9, 'unknown step kind "conect"', 'did you mean "connect"', 'step kinds: listen, connect, send'],
  'shell-step.yaml': [8, 9, 'unknown step kind "shell"', 'step kinds:'],
  'port-out-of-range.yaml': [9, 11, 'steps[0].port', '70000', 'at most 65535'],
  'pinned-port-number.yaml': [15, 16, 'steps[1].localPort', 'got the integer 40001', 'expected a mapping'],
  'unknown-host.yaml': [8, 11, '"router" is not one of: client, firewall, server'],
  'wrong-type.yaml': [8, 9, 'steps[0].ms', 'got the string "ten"', 'expected a number'],
  'yaml-syntax.yaml': [6, 10, 'YAML syntax', 'never closed with ]'],
  'duplicate-key.yaml': [10, 5, 'duplicate key "port"'],
  'undefined-conn.yaml': [17, 11, 'connection "c2" is not defined by an earlier connect step', 'did you mean "c1"'],
  'conn-used-before-connect.yaml': [12, 11, 'connection "c1" is not defined by an earlier connect step', 'connected later, at line 13'],
  'conn-on-wrong-host.yaml': [16, 11, '"firewall" is not one of: client, server', 'connection "c1" runs on one of its ends'],
  'connect-to-itself.yaml': [13, 9, 'steps[1].to', '"to" must differ from "host"'],
  'duplicate-conn-id.yaml': [16, 9, 'connection "c1" is defined twice (first at line 10)'],
  'unknown-variant-in-when.yaml': [10, 19, 'unknown variant "contol"', 'did you mean "control"', 'variants: cause, control'],
  'missing-expect.yaml': [3, 1, 'missing key "expect"'],
  'bad-iptables-rule.yaml': [8, 7, 'firewall.rules[0]', '--modprobe is not allowed'],
  'shell-command-as-rule.yaml': [9, 11, 'got the string "rm -rf /"', 'an iptables rule starting with -A, -I, -D or -F CHAIN'],
  'bad-sysctl-name.yaml': [8, 5, 'invalid key "kernel.core_pattern"', 'per-namespace network sysctl'],
  'undefined-snapshot.yaml': [11, 40, 'no snapshot step on server makes snapshot "after"'],
  'undefined-listener.yaml': [12, 15, 'no earlier listen step defines listener "port8000"', 'did you mean "port8080"', 'port<PORT>'],
  'duplicate-listener.yaml': [13, 11, 'server already listens on port 8080', 'listener "first", line 7'],
  'bad-enum.yaml': [18, 10, '"kill" is not one of: end, destroy, abort'],
  'unknown-expectation.yaml': [10, 5, 'unknown expectation "rts"', 'did you mean "rst"', 'expectation kinds: rst, noRst, app, counter, sockets'],
  'capture-point-not-captured.yaml': [14, 24, 'capture point "firewall-b" is not captured', 'capture: client, server'],
  'seen-and-not-seen.yaml': [14, 19, 'capture point "server" is in both seenAt and notSeenAt'],
  'reserved-variant-name.yaml': [12, 3, '"cause" is the name of the top-level variant'],
  'empty-file.yaml': [1, 1, 'holds no scenario'],
};

describe('loadScenario: bad scenario files', () => {
  it('has an expectation for every bad fixture, and at least 14 of them', async () => {
    const files = (await readdir(badDir)).filter((f) => f.endsWith('.yaml')).sort();
    expect(files).to.deep.equal(Object.keys(BAD).sort());
    expect(files.length).to.be.at.least(14);
  });

  for (const [name, [line, col, ...fragments]] of Object.entries(BAD)) {
    it(`${name}: ${line}:${col}`, async () => {
      const file = join(badDir, name);
      const err = await loadError(file);
      expect(err.file).to.equal(file);
      expect([err.line, err.col], err.located()).to.deep.equal([line, col]);
      // One mistake per fixture, so one error: the message is one line.
      expect(err.message.split('\n'), err.located()).to.have.length(1);
      for (const f of fragments) expect(err.message).to.include(f);
      expect(err.located()).to.match(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${line}:${col}: `));
    });
  }

  it('reports every error, one per line, each located, the first one in the InputError', () => {
    const text = [
      'name: several', //                           1
      'summary: s',
      'explanation: e',
      'steps:',
      '  - do: listen', //                          5
      '    host: serer',
      '    port: 0',
      'expect:',
      '  - noRst: {}',
      '    extra: 1', //                            10
    ].join('\n');
    let err: InputError | undefined;
    try {
      parseScenario(text, 'several.yaml');
    } catch (e) {
      err = e as InputError;
    }
    expect(err).to.be.instanceOf(InputError);
    expect([err!.line, err!.col]).to.deep.equal([6, 11]);
    const lines = err!.located().split('\n');
    expect(lines).to.have.length(3);
    expect(lines[0]).to.match(/^several\.yaml:6:11: .*"serer".*did you mean "server"/);
    expect(lines[1]).to.match(/^several\.yaml:7:11: .*at least 1/);
    expect(lines[2]).to.match(/^several\.yaml:10:5: /);
  });

  it('names the variant when a step mistake shows only in some variants', () => {
    const text = `name: x
summary: s
explanation: e
steps:
  - do: connect
    id: c1
    host: client
    to: server
    port: 80
    when: other
  - do: send
    host: client
    conn: c1
expect:
  - noRst: {}
variants:
  other:
    summary: o
    expect:
      - noRst: {}
`;
    expect(() => parseScenario(text, 'x.yaml'))
      .to.throw(InputError, /does not run in this variant\) \(in variant cause\)/)
      .with.property('line', 13);
  });

  it('says when a file cannot be read', async () => {
    const err = await loadError(join(badDir, 'no-such-file.yaml'));
    expect(err.message).to.include('cannot read a scenario file');
  });
});

describe('loadScenario and planFor: a good scenario', () => {
  let s: LoadedScenario;
  before(async () => {
    s = await loadScenario(goodFile);
  });

  it('loads, with the cause variant first', () => {
    expect(s.file).to.equal(goodFile);
    expect(s.scenario.name).to.equal('good-scenario');
    expect(s.variants).to.deep.equal(['cause', 'control', 'sysctl-only']);
    // defaults are filled in
    expect(s.scenario.steps[0]).to.include({ do: 'listen', accept: true, read: true });
  });

  it('filters steps by variant and keeps their source lines', () => {
    const lines = (v: string) => planFor(s, v).steps.map((x) => x.line);
    const all = [20, 29, 35, 39, 43, 46, 48, 61, 78, 85];
    expect(lines('cause')).to.deep.equal([...all, 51, 73].sort((a, b) => a - b));
    expect(lines('control')).to.deep.equal([...all, 24, 56, 69, 81].sort((a, b) => a - b));
    expect(lines('sysctl-only')).to.deep.equal([...all, 56, 65].sort((a, b) => a - b));
    const cause = planFor(s, 'cause');
    expect(cause.steps.find((x) => x.line === 51)!.step).to.deep.include({ do: 'close', how: 'abort' });
    expect(cause.steps.map((x) => x.step.do)).to.include.members(['forge', 'snapshot', 'sysctl', 'waitFor', 'resume', 'stopListener']);
  });

  it('merges the variant sysctls over the top-level ones, per host', () => {
    expect(planFor(s, 'cause').sysctls).to.deep.equal({
      client: { 'net.ipv4.tcp_rfc1337': 0, 'net.ipv4.tcp_fin_timeout': 30 },
      server: { 'net.core.somaxconn': 128 },
    });
    expect(planFor(s, 'control').sysctls).to.deep.equal({
      client: { 'net.ipv4.tcp_rfc1337': 1, 'net.ipv4.tcp_fin_timeout': 30 },
      firewall: { 'net.ipv4.ip_forward': 1 },
      server: { 'net.core.somaxconn': 128 },
    });
  });

  it('picks the expectations of the variant, or of expectOf, with their lines', () => {
    const cause = planFor(s, 'cause');
    expect(cause.expect.map((e) => e.line)).to.deep.equal([89, 98, 99]);
    expect(cause.expect[0]!.expectation).to.have.property('rst').that.includes({ from: 'client', count: 1 });

    const control = planFor(s, 'control');
    expect(control.expectOf).to.equal('control');
    expect(control.expect.map((e) => e.line)).to.deep.equal([109, 110, 111]);
    expect(control.expect[0]!.expectation).to.deep.equal({ noRst: {} });

    // The control's steps judged by the cause's expectations: how the verifier is shown to fail.
    const crossed = planFor(s, 'control', 'cause');
    expect(crossed.variant).to.equal('control');
    expect(crossed.expectOf).to.equal('cause');
    expect(crossed.steps.map((x) => x.line)).to.include(69);
    expect(crossed.expect.map((e) => e.line)).to.deep.equal([89, 98, 99]);
  });

  it('carries the rest of the plan', () => {
    const p = planFor(s, 'cause');
    expect(p).to.include({ file: goodFile, name: 'good-scenario', variant: 'cause', summary: s.scenario.summary });
    expect(p.rfc).to.deep.equal(['RFC 9293 3.10.4']);
    expect(p.firewallRules).to.deep.equal([{ rule: '-A FORWARD -p tcp --dport 23 -j REJECT --reject-with tcp-reset', line: 17, col: 7 }]);
    expect(p.capture).to.deep.equal(['client', 'firewall-a', 'server']);
  });

  it('throws an InputError listing the known variants for an unknown one', () => {
    expect(() => planFor(s, 'contrl')).to.throw(InputError, /unknown variant "contrl" \(did you mean "control"\?\).*cause, control, sysctl-only/);
    expect(() => planFor(s, 'cause', 'nope')).to.throw(InputError, /unknown variant "nope"/);
  });

  it('locates any path of the file', async () => {
    expect(await s.locate(['steps', 2, 'port'])).to.deep.equal({ line: 33, col: 11 });
    expect(await s.locate(['variants', 'control', 'expect', 2])).to.deep.equal({ line: 111, col: 9 });
  });
});

describe('schema/scenario.schema.json', () => {
  it('is valid JSON, names every step kind, and is what the zod schema generates', async () => {
    const text = await readFile(join(root, 'schema/scenario.schema.json'), 'utf8');
    const json = JSON.parse(text) as Record<string, unknown>;
    expect(json).to.include({ title: 'rstlab scenario' });
    expect(json.$schema).to.match(/json-schema\.org/);
    for (const kind of Step.options.map((o) => o.shape.do.value)) expect(text).to.include(`"const": "${kind}"`);
    // A stale file would let editors accept what the loader refuses: npm run build rewrites it.
    expect(json).to.deep.equal(JSON.parse(JSON.stringify(scenarioJsonSchema())));
  });

  it('leaves defaulted fields optional (io: input)', () => {
    const json = scenarioJsonSchema() as { required?: string[] };
    expect(json.required).to.include.members(['name', 'steps', 'expect']);
    expect(json.required).to.not.include('capture');
    expect(json.required).to.not.include('variants');
  });
});

describe('listScenarios', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rstlab-load-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads every *.yaml of a folder, sorted by name', async () => {
    await copyFile(goodFile, join(dir, 'good-scenario.yaml'));
    await copyFile(join(badDir, 'missing-expect.yaml'), join(dir, 'notes.txt'));
    const all = await listScenarios(dir);
    expect(all.map((s) => s.scenario.name)).to.deep.equal(['good-scenario']);
  });

  it('rejects a file whose name is not its name:', async () => {
    const file = join(dir, 'other-name.yaml');
    await copyFile(goodFile, file);
    let err: InputError | undefined;
    try {
      await listScenarios(dir);
    } catch (e) {
      err = e as InputError;
    }
    expect(err).to.be.instanceOf(InputError);
    expect(err!.file).to.equal(file);
    expect([err!.line, err!.col]).to.deep.equal([3, 7]);
    expect(err!.message).to.include('"good-scenario" does not match the file name; expected "other-name"');
  });
});
