// Which tools a run needs, and that the Docker image has every one of them.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BASE_TOOLS, TOOL_PACKAGE, toolsFor } from '../../src/lab/tools.js';
import { parseScenario } from '../../src/scenario/parse.js';
import { planFor } from '../../src/scenario/plan.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

const plan = (extra: string) =>
  planFor(parseScenario(['name: t', 'summary: s', 'explanation: e', extra, 'expect:', '  - noRst: {}', ''].join('\n'), 't.yaml'), 'cause');

describe('tools a run needs', () => {
  it('conntrack where a net.netfilter sysctl is set, ss where a socket is killed, nothing more otherwise', () => {
    const sleep = 'steps:\n  - do: sleep\n    ms: 1';
    expect(toolsFor([plan(sleep)])).to.deep.equal([]);
    expect(toolsFor([plan(`sysctls:\n  firewall:\n    net.netfilter.nf_conntrack_tcp_loose: 0\n${sleep}`)])).to.deep.equal(['conntrack']);
    expect(toolsFor([plan(`sysctls:\n  client:\n    net.ipv4.tcp_rfc1337: 1\n${sleep}`)])).to.deep.equal([]);
    const kill = 'steps:\n  - do: connect\n    id: c1\n    host: client\n    to: server\n    port: 7\n  - do: killSocket\n    host: client\n    conn: c1';
    expect(toolsFor([plan(kill), plan(sleep)])).to.deep.equal(['ss']);
  });

  it('every base tool is known, and lab/Dockerfile installs the package of every tool', () => {
    for (const t of BASE_TOOLS) expect(TOOL_PACKAGE).to.have.property(t);
    const dockerfile = readFileSync(`${root}lab/Dockerfile`, 'utf8');
    const installed = dockerfile.split('\nFROM ').at(-1)!;
    for (const pkg of new Set(Object.values(TOOL_PACKAGE))) {
      if (pkg === 'util-linux') continue; // essential in Debian: in every image
      expect(installed, pkg).to.match(new RegExp(`\\s${pkg}\\s`));
    }
  });
});
