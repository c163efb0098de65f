// The docker lab image on a real Docker daemon: it runs the agent on the host's own node
// (one agent runtime on both backends), and building it leaves no untagged image behind.
// Touches only what it makes: one lab of its own, and one test image it removes.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { newLabId, type HostName } from '../../src/lab/backend.js';
import { AGENT_IN_HOST, DockerBackend, LAB_LABEL } from '../../src/lab/docker/docker-backend.js';
import { IMAGE_LABEL, IMAGE_REPOSITORY, NODE_LABEL, imageHash } from '../../src/lab/docker/image.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const HOSTS: HostName[] = ['client', 'firewall', 'server'];

/** Untagged images that an rstlab build made (lab/Dockerfile labels every image it makes). */
function danglingOfOurs(): string[] {
  const out = execFileSync('docker', ['images', '-q', '--no-trunc', '--filter', 'dangling=true', '--filter', `label=${IMAGE_LABEL}`], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean);
}

describe('the docker lab image', function () {
  // A first build on a machine makes the base image too (minutes).
  this.timeout(15 * 60_000);
  const docker = new Docker();

  it('runs the host\'s own node and loads raw-socket there, in every host of a lab', async () => {
    const backend = new DockerBackend({ log: () => undefined });
    await backend.check();
    const tag = `${IMAGE_REPOSITORY}:${await imageHash(root)}`;
    expect((await docker.getImage(tag).inspect()).Config.Labels?.[NODE_LABEL]).to.equal(process.version);
    const id = newLabId();
    const lab = await backend.up(id);
    try {
      for (const h of HOSTS) {
        const v = await lab.exec(h, ['node', '-v']);
        expect(v.stdout.trim(), `${h}: node -v`).to.equal(process.version);
        const addon = await lab.exec(h, ['node', '-e', `require('/rstlab/node_modules/raw-socket'); console.log(process.versions.modules)`]);
        expect(addon.code, `${h}: ${addon.stderr}`).to.equal(0);
        expect(addon.stdout.trim(), `${h}: node ABI`).to.equal(process.versions.modules);
      }
      // A lab process has the container's capabilities, not ours: NET_ADMIN (12), no SYS_ADMIN (21).
      const caps = await lab.exec('client', ['sh', '-c', 'grep CapEff /proc/self/status']);
      const eff = BigInt(`0x${/CapEff:\s*([0-9a-f]+)/.exec(caps.stdout)?.[1] ?? '0'}`);
      expect([(eff >> 12n) & 1n, (eff >> 21n) & 1n], caps.stdout).to.deep.equal([1n, 0n]);
      // And the agent itself starts there and answers (its first line is a ready event).
      const agent = lab.spawn('client', lab.agentArgv('client'));
      const first = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the agent at ${AGENT_IN_HOST} said nothing in 10 s`)), 10_000);
        agent.stdout.setEncoding('utf8').once('data', (d: string) => {
          clearTimeout(timer);
          resolve(d);
        });
      });
      expect(() => JSON.parse(first.split('\n')[0] as string)).to.not.throw();
      agent.kill('SIGKILL');
    } finally {
      await lab.down();
    }
    expect(execFileSync('docker', ['ps', '-aq', '--filter', `label=${LAB_LABEL}=${id}`], { encoding: 'utf8' }).trim()).to.equal('');
  });

  it('a full build (no cache) leaves no untagged image behind', async () => {
    // Its own repository, so the build really happens and the lab image others use is untouched.
    const repository = `rstlab-host-test-${process.pid}`;
    const before = new Set(danglingOfOurs());
    const backend = new DockerBackend({ log: () => undefined, imageRepository: repository });
    try {
      await backend.check();
      const made = danglingOfOurs().filter((i) => !before.has(i));
      expect(made, 'untagged images the build left').to.deep.equal([]);
    } finally {
      const tag = `${repository}:${await imageHash(root)}`;
      await docker.getImage(tag).remove().catch(() => undefined);
    }
    expect(execFileSync('docker', ['images', '-q', repository], { encoding: 'utf8' }).trim()).to.equal('');
  });
});
