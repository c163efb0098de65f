// The docker backend on a real Docker daemon: the netns lab's topology in three containers,
// traffic routed through the firewall, stdio of processes in the hosts, labels, and teardown.
// Skipped (with a message) only where Docker cannot be reached; under CI that is a failure.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { newLabId, type Lab, type LabProcess } from '../../src/lab/backend.js';
import { TOPOLOGY, type HostName } from '../../src/vocabulary.js';
import { AGENT_IN_HOST, DockerBackend, HOST_LABEL, LAB_LABEL, containerName } from '../../src/lab/docker/docker-backend.js';

const HOSTS: HostName[] = ['client', 'firewall', 'server'];

/** Names of the containers carrying a label, as `docker ps` sees them. */
function labelled(label: string): string[] {
  const out = execFileSync('docker', ['ps', '-a', '--filter', `label=${label}`, '--format', '{{.Names}}'], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean).sort();
}

function networksLabelled(label: string): string[] {
  const out = execFileSync('docker', ['network', 'ls', '--filter', `label=${label}`, '--format', '{{.Name}}'], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean).sort();
}

/** Resolve with the text a stream has produced once it matches. */
async function until(p: LabProcess, stream: 'stdout' | 'stderr', pattern: RegExp, ms = 10_000): Promise<string> {
  let text = '';
  const s = p[stream];
  s.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${pattern} on ${stream} within ${ms} ms; saw: ${text}`)), ms);
    s.on('data', (d: string) => {
      text += d;
      if (pattern.test(text)) {
        clearTimeout(timer);
        resolve(text);
      }
    });
  });
}

describe('the docker backend', function () {
  // The first run on a machine builds the image (minutes); later runs reuse it.
  this.timeout(30 * 60_000);
  const backend = new DockerBackend();
  const id = newLabId();
  let lab: Lab;

  before(async function () {
    try {
      await backend.reachDaemon();
    } catch (err) {
      if (process.env.CI) throw err;
      console.log(`      skipped: Docker is not reachable here (${(err as Error).message}); under CI this fails`);
      this.skip();
    }
    await backend.check();
    const t = Date.now();
    lab = await backend.up(id);
    console.log(`      lab ${id} up in ${Date.now() - t} ms (image present)`);
  });

  after(async () => {
    await lab?.down();
  });

  it('has one container per host, labelled with the lab and the host', () => {
    expect(labelled(`${LAB_LABEL}=${id}`)).to.deep.equal(HOSTS.map((h) => containerName(id, h)).sort());
    for (const h of HOSTS) expect(labelled(`${HOST_LABEL}=${h}`)).to.include(containerName(id, h));
  });

  it('has the netns lab\'s interfaces, addresses and routes', async () => {
    const addr = async (h: HostName) => {
      const r = await lab.exec(h, ['ip', '-br', '-4', 'addr']);
      expect(r.code, r.stderr).to.equal(0);
      return r.stdout.split('\n').filter(Boolean).map((l) => l.split(/\s+/)).map(([name, , a]) => `${name?.replace(/@.*/, '')} ${a}`).sort();
    };
    expect(await addr('client')).to.deep.equal(['eth0 10.0.1.2/24', 'lo 127.0.0.1/8']);
    expect(await addr('firewall')).to.deep.equal(['eth0 10.0.1.1/24', 'eth1 10.0.2.1/24', 'lo 127.0.0.1/8']);
    expect(await addr('server')).to.deep.equal(['eth0 10.0.2.2/24', 'lo 127.0.0.1/8']);
    expect((await lab.exec('client', ['ip', 'route', 'show', 'default'])).stdout).to.contain(`default via ${TOPOLOGY.client.gateway} dev eth0`);
    expect((await lab.exec('server', ['ip', 'route', 'show', 'default'])).stdout).to.contain(`default via ${TOPOLOGY.server.gateway} dev eth0`);
  });

  it('forwards in the firewall only, and lets a scenario set the hosts\' own net sysctls', async () => {
    const get = async (h: HostName, key: string) => (await lab.exec(h, ['sysctl', '-n', key])).stdout.trim();
    expect(await get('firewall', 'net.ipv4.ip_forward')).to.equal('1');
    expect(await get('client', 'net.ipv4.ip_forward')).to.equal('0');
    const set = await lab.exec('server', ['sysctl', '-w', 'net.ipv4.tcp_abort_on_overflow=1']);
    expect(set.code, set.stderr).to.equal(0);
    expect(await get('server', 'net.ipv4.tcp_abort_on_overflow')).to.equal('1');
    expect(await get('client', 'net.ipv4.tcp_abort_on_overflow')).to.equal('0');
    // the host's own kernel settings stay out of reach
    expect((await lab.exec('server', ['sysctl', '-w', 'kernel.panic_on_oops=1'])).code).to.not.equal(0);
  });

  it('routes a TCP connection from client to server through the firewall, seen by tcpdump there', async () => {
    const listener = lab.spawn('server', ['node', '-e',
      "require('net').createServer((s) => s.end('hello from server\\n')).listen(7000, () => console.log('listening'))"]);
    const capture = lab.spawn('firewall', ['tcpdump', '-i', 'eth1', '-nn', '-l', '-c', '1', 'tcp[tcpflags] == tcp-syn']);
    try {
      await Promise.all([until(listener, 'stdout', /listening/), until(capture, 'stderr', /listening on eth1/)]);
      const r = await lab.exec('client', ['node', '-e',
        "const s = require('net').connect(7000, '10.0.2.2'); s.pipe(process.stdout); s.on('error', (e) => { console.error(e.message); process.exit(1); })"]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.equal('hello from server\n');
      const seen = await until(capture, 'stdout', /\n/);
      expect(seen).to.match(/IP 10\.0\.1\.2\.\d+ > 10\.0\.2\.2\.7000: Flags \[S\]/);
      expect(await capture.exited).to.deep.equal({ code: 0, signal: null });
    } finally {
      listener.kill();
      capture.kill();
    }
    expect(await listener.exited).to.deep.equal({ code: null, signal: 'SIGTERM' });
  });

  it('gives a process its stdin, and ends it when stdin ends', async () => {
    const cat = lab.spawn('client', ['cat']);
    const out = until(cat, 'stdout', /two/);
    cat.stdin.write('one\n');
    cat.stdin.end('two\n');
    expect(await out).to.equal('one\ntwo\n');
    expect(await cat.exited).to.deep.equal({ code: 0, signal: null });
    const r = await lab.exec('server', ['sh', '-c', 'cat; echo oops >&2; exit 3'], 'input');
    expect(r).to.deep.equal({ code: 3, stdout: 'input', stderr: 'oops\n' });
  });

  it('runs the compiled agent\'s Node with raw-socket built for it, and NET_RAW', async () => {
    expect(lab.agentArgv('client')).to.deep.equal(['node', AGENT_IN_HOST]);
    const r = await lab.exec('client', ['node', '-e', [
      "const raw = require(require.resolve('raw-socket', { paths: ['/rstlab/dist/src/agent'] }));",
      'raw.createSocket({ protocol: raw.Protocol.TCP }).close();',
      "console.log(require('fs').existsSync('/rstlab/dist/src/lab/backend.js'))",
    ].join(' ')]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.equal('true\n');
    // the project's code is mounted read-only
    expect((await lab.exec('client', ['touch', '/rstlab/dist/src/x'])).code).to.not.equal(0);
  });

  it('takes the lab down, idempotently, leaving nothing labelled with it', async () => {
    const sleeper = lab.spawn('server', ['sleep', '600']);
    await lab.exec('server', ['true']);
    const t = Date.now();
    await lab.down();
    console.log(`      lab ${id} down in ${Date.now() - t} ms`);
    await lab.down();
    expect((await sleeper.exited).code).to.equal(null);
    expect(labelled(`${LAB_LABEL}=${id}`)).to.deep.equal([]);
    expect(networksLabelled(`${LAB_LABEL}=${id}`)).to.deep.equal([]);
    expect(() => lab.spawn('client', ['true'])).to.throw(/down/);
  });

  it('builds labs in parallel without collisions; each is found by label with its owner, and removed', async () => {
    const ids = [newLabId(), newLabId()];
    const labs = await Promise.all(ids.map((i) => backend.up(i)));
    try {
      for (const l of labs) {
        const r = await l.exec('client', ['ping', '-c', '1', '-W', '2', TOPOLOGY.server.address]);
        expect(r.code, r.stdout + r.stderr).to.equal(0);
        expect(r.stdout).to.match(/ttl=63/); // one hop: forwarded by the firewall
      }
      // only these labs: others' labs may be up on this machine
      const mine = (await backend.labs()).filter((f) => ids.includes(f.id));
      expect(mine.map((f) => f.owner?.pid)).to.deep.equal([process.pid, process.pid]);
      const removed = (await Promise.all(mine.map((f) => backend.removeLab(f)))).flat();
      expect(removed).to.include.members(ids.flatMap((i) => HOSTS.map((h) => `container ${containerName(i, h)}`)));
      for (const i of ids) expect(labelled(`${LAB_LABEL}=${i}`)).to.deep.equal([]);
    } finally {
      await Promise.all(labs.map((l) => l.down().catch(() => undefined)));
    }
  });

});
