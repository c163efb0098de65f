// The docker backend: the three lab hosts as containers with no Docker network, wired by
// veth pairs moved into their network namespaces (the way containerlab wires its nodes),
// so every lab has exactly the netns lab's interfaces, addresses and routes, parallel labs
// cannot collide, and the host's Docker bridges and iptables rules never see lab traffic.
// Only this file and image.ts (for its types) import dockerode.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { InputError, LabError } from '../../errors.js';
import {
  HOST_SYSCTLS, IMPOSTOR_SYSCTLS, LAB_PREFIX, hostBatches, impostorBatch, noDadSysctls, portRangeSysctls, switchBatch,
  type Backend, type ExecResult, type FoundLab, type HostName, type Lab, type LabHost, type LabProcess, type UpOptions,
} from '../backend.js';
import { HOSTS } from '../../vocabulary.js';
import { claimLab, currentOwner, forgetLab, ownerFromLabels, ownerLabels, readLabRecord, type LabRecord } from '../owner.js';
import { LAB_ENV, collect, findInPath, hasCapabilities, run, start } from '../process.js';
import { ensureImage, messageOf, statusOf } from './image.js';
import { requireTools, type Tool } from '../tools.js';

const PROJECT_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** Every container and network a lab makes carries `rstlab.lab=<id>`, and its owner
 * (owner.ts: pid, start time, kept); cleanup finds leftovers, and whose they are, by them. */
export const LAB_LABEL = 'rstlab.lab';
/** Which lab host a container is. */
export const HOST_LABEL = 'rstlab.host';
/** Only what the lab needs: interfaces, routes, iptables, ss -K (NET_ADMIN); tcpdump, raw-socket (NET_RAW). */
export const CAPABILITIES = ['NET_ADMIN', 'NET_RAW'] as const;
/** IPv6 on: Docker turns it off in a container whose networks have none (disable_ipv6=1 on
 * all and default), and a veth moved in later copies `default` ("IPv6 is disabled on this
 * device"). The lab is dual-stack on every backend. */
const IPV6_ON = { 'net.ipv6.conf.all.disable_ipv6': '0', 'net.ipv6.conf.default.disable_ipv6': '0' };

/** Set when each container is created: the same as every lab's (HOST_SYSCTLS), IPv6 on and no
 * DAD for the interfaces made later (they copy `default`); up() adds the lab's port range. */
export const SYSCTLS: Record<HostName, Record<string, string>> = {
  client: { ...HOST_SYSCTLS.client, ...IPV6_ON, ...noDadSysctls() },
  firewall: { ...HOST_SYSCTLS.firewall, ...IPV6_ON, ...noDadSysctls() },
  server: { ...HOST_SYSCTLS.server, ...IPV6_ON, ...noDadSysctls() },
};

/** Where the project's compiled dist/src is bind-mounted (read-only) inside every host. */
export const DIST_MOUNT = '/rstlab/dist/src';
export const AGENT_IN_HOST = `${DIST_MOUNT}/agent/main.js`;

export const containerName = (id: string, host: LabHost | typeof SWITCH): string => `${LAB_PREFIX}${id}-${host}`;
/** The container that holds net B's bridge, where a lab has an impostor (as on the netns backend). */
const SWITCH = 'switch' as const;
type Node = LabHost | typeof SWITCH;

export interface DockerBackendOptions {
  /** Where progress of an image build goes, one line at a time (default: stderr). */
  log?: (line: string) => void;
  /** The project root holding lab/ and dist/src (default: found from this file). */
  projectRoot?: string;
  /** Use this base image instead of finding or building one. */
  baseImage?: string;
  /** Tag the lab image in this repository instead of rstlab-host, built without Docker's cache (tests). */
  imageRepository?: string;
  docker?: Docker;
}

/** The host-side batch: both ends of each veth pair are made directly in the containers' namespaces.
 * With an impostor (and so a switch), net B is a bridge's ports, under the same interface names. */
export function vethBatch(pid: Record<HostName, number> & Partial<Record<Node, number>>): string {
  const netB = pid.impostor !== undefined && pid.switch !== undefined
    ? [
        `link add eth1 netns ${pid.firewall} type veth peer name fw netns ${pid.switch}`,
        `link add eth0 netns ${pid.server} type veth peer name server netns ${pid.switch}`,
        `link add eth0 netns ${pid.impostor} type veth peer name impostor netns ${pid.switch}`,
      ]
    : [`link add eth0 netns ${pid.server} type veth peer name eth1 netns ${pid.firewall}`];
  return [`link add eth0 netns ${pid.client} type veth peer name eth0 netns ${pid.firewall}`, ...netB].join('\n');
}

/**
 * Run inside each container's network and mount namespaces (so `ip` and `mount` are the
 * image's): make /proc/sys/net writable, then configure the interfaces from the batch on stdin.
 * Docker mounts all of /proc/sys read-only, which would stop a scenario's `sysctl -w
 * net.ipv4.tcp_...`; net.* sysctls belong to the container's own network namespace, while
 * the rest of /proc/sys (kernel.*, vm.*: the host's) stays read-only. Each interface's
 * accept_dad is 0 before the batch brings it up (backend.ts noDadSysctls: the container's
 * `default` already says so; this makes sure, as the netns backend does).
 */
const HOST_SETUP = [
  'mount --bind /proc/sys/net /proc/sys/net',
  'mount -o remount,bind,rw,nosuid,nodev,noexec /proc/sys/net',
  'for f in /proc/sys/net/ipv6/conf/eth*/accept_dad; do [ ! -e "$f" ] || echo 0 > "$f"; done',
  'exec ip -batch -',
].join(' && ');

class DockerLab implements Lab {
  readonly backend = 'docker' as const;
  private readonly running = new Set<LabProcess>();
  private downed?: Promise<void>;

  /** Marks every process of the lab, as on the netns backend: which lab, whose (a test's
   * leftover check reads it from /proc/PID/environ). */
  private readonly env: NodeJS.ProcessEnv;

  constructor(
    private readonly record: LabRecord,
    private readonly docker: Docker,
    private readonly hosts: Partial<Record<LabHost, { pid: number; bounding: string }>>,
  ) {
    this.env = { ...LAB_ENV, RSTLAB_LAB: record.id, RSTLAB_OWNER: String(record.owner.pid) };
  }

  get id(): string {
    return this.record.id;
  }

  get ports() {
    return this.record.ports;
  }

  /**
   * A process in a host as `docker exec` would make it, without the daemon's round trips
   * (exec create, start, attach, inspect: tens of ms each, paid for every tcpdump, agent and
   * step): nsenter joins the container's mount, UTS, IPC, network and pid namespaces and its
   * root and working folder, and setpriv narrows the capability bounding set to the
   * container's own (NET_ADMIN, NET_RAW and Docker's defaults). In the container's pid
   * namespace the process dies with the container (its init), as an exec's would.
   */
  spawn(host: LabHost, argv: string[]): LabProcess {
    if (this.downed) throw new LabError(`lab ${this.id} is down`);
    const h = this.hosts[host];
    if (!h) throw new LabError(`lab ${this.id} has no host ${host}`);
    const { pid, bounding } = h;
    const inner = start('nsenter', [
      '-t', String(pid), '-m', '-u', '-i', '-n', '-p', '-r', '-w', '--',
      'setpriv', `--bounding-set=${bounding}`, '--', ...argv,
    ], this.env);
    const proc: LabProcess = {
      stdin: inner.stdin, stdout: inner.stdout, stderr: inner.stderr, exited: inner.exited,
      // nsenter forks into the pid namespace and only waits; the signal is for its child.
      kill: (signal: NodeJS.Signals = 'SIGTERM') => signalChildOf(inner.pid, signal, () => inner.kill(signal)),
    };
    this.running.add(proc);
    void proc.exited.then(() => this.running.delete(proc));
    return proc;
  }

  exec(host: LabHost, argv: string[], stdin?: string): Promise<ExecResult> {
    return collect(this.spawn(host, argv), stdin);
  }

  agentArgv(): string[] {
    return ['node', AGENT_IN_HOST];
  }

  terminalArgv(host: HostName, argv: string[], tty: boolean): string[] {
    // docker exec: a terminal of the container's own (its image has ip, ss, nstat, tcpdump, iptables, conntrack)
    return ['docker', 'exec', tty ? '-it' : '-i', '-e', `PS1=[rstlab ${this.id} ${host}] \\w# `, containerName(this.id, host), ...argv];
  }

  down(): Promise<void> {
    this.downed ??= (async () => {
      // Removing a container kills everything in its pid namespace; their nsenters then end.
      const { failures } = await removeLabelled(this.docker, `${LAB_LABEL}=${this.id}`);
      await Promise.race([
        Promise.all([...this.running].map((p) => p.exited)),
        new Promise((resolve) => setTimeout(resolve, 5000).unref()),
      ]);
      if (failures.length > 0) {
        throw new LabError(`could not remove all of lab ${this.id}: ${failures.join('; ')}`, 'run: rstlab cleanup');
      }
      await forgetLab(this.record);
    })();
    return this.downed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.down();
  }
}

/** Each host's init pid and capability bounding set, as spawn() enters them. */
function hostsOf(pid: Partial<Record<LabHost | 'switch', number>>): Partial<Record<LabHost, { pid: number; bounding: string }>> {
  // every container but the switch, which runs nothing after it is wired
  return Object.fromEntries(Object.entries(pid).filter(([h]) => h !== 'switch').map(([h, p]) => [h, { pid: p, bounding: boundingSetOf(p) }]));
}

/** Signal the child a process forked (nsenter's), or, before it has forked, the process itself. */
function signalChildOf(pid: number | undefined, signal: NodeJS.Signals, otherwise: () => void): void {
  let child: number | undefined;
  try {
    child = Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0]) || undefined;
  } catch {
    // already gone
  }
  if (child === undefined) return otherwise();
  try {
    process.kill(child, signal);
  } catch {
    otherwise();
  }
}

/** The capability bounding set of a process as setpriv's argument: exactly its capabilities. */
function boundingSetOf(pid: number): string {
  const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  const mask = BigInt(`0x${m?.[1] ?? '0'}`);
  const caps: string[] = [];
  for (let bit = 0; bit < 64; bit++) if ((mask >> BigInt(bit)) & 1n) caps.push(`+cap_${bit}`);
  return ['-all', ...caps].join(',');
}

/** Remove every container and network carrying a label (`key` or `key=value`); keep going past errors. */
async function removeLabelled(docker: Docker, label: string): Promise<{ removed: string[]; failures: string[] }> {
  const removed: string[] = [];
  const failures: string[] = [];
  const filters = JSON.stringify({ label: [label] });
  const containers = await docker.listContainers({ all: true, filters });
  await Promise.all(containers.map(async (c) => {
    const name = (c.Names[0] ?? c.Id).replace(/^\//, '');
    try {
      await docker.getContainer(c.Id).remove({ force: true, v: true });
      removed.push(name);
    } catch (e) {
      if (statusOf(e) !== 404) failures.push(`container ${name}: ${messageOf(e)}`);
    }
  }));
  const networks = await docker.listNetworks({ filters });
  await Promise.all(networks.map(async (n) => {
    try {
      await docker.getNetwork(n.Id).remove();
      removed.push(n.Name);
    } catch (e) {
      if (statusOf(e) !== 404) failures.push(`network ${n.Name}: ${messageOf(e)}`);
    }
  }));
  return { removed: removed.sort(), failures };
}

export class DockerBackend implements Backend {
  readonly name = 'docker' as const;
  private readonly docker: Docker;
  private readonly log: (line: string) => void;
  private readonly root: string;
  private image?: Promise<string>;

  constructor(private readonly options: DockerBackendOptions = {}) {
    this.docker = options.docker ?? new Docker();
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.root = options.projectRoot ?? PROJECT_ROOT;
  }

  async check(_tools?: readonly Tool[]): Promise<void> {
    await this.reachDaemon();
    // This machine only wires the containers; the lab hosts' own tools (every one of
    // tools.ts TOOL_PACKAGE) come with the image (lab/Dockerfile).
    requireTools(['ip', 'nsenter'], ' on this machine');
    if (!hasCapabilities('NET_ADMIN', 'SYS_ADMIN')) {
      throw new LabError('the docker lab needs root to wire veth pairs into its containers', 'run as root, e.g. sudo npm run scenario -- NAME --backend docker');
    }
    await this.ensureImage();
  }

  async up(id: string, opts: UpOptions = {}): Promise<Lab> {
    const image = await this.ensureImage();
    const distSrc = join(this.root, 'dist', 'src');
    const made: Partial<Record<Node, Docker.Container>> = {};
    // The record first: whatever of the lab exists, cleanup can tell whose it is.
    const record = await claimLab(id, 'docker', { ...currentOwner(), kept: opts.kept ?? false });
    const ports = portRangeSysctls(record.ports);
    const sysctls: Record<Node, Record<string, string>> = {
      client: { ...SYSCTLS.client, ...ports.client }, firewall: { ...SYSCTLS.firewall, ...ports.firewall }, server: { ...SYSCTLS.server, ...ports.server },
      impostor: { 'net.ipv4.ip_forward': '0' }, switch: {},
    };
    const nodes: Node[] = [...HOSTS, ...(opts.impostor ? (['impostor', SWITCH] as const) : [])];
    try {
      await Promise.all(nodes.map(async (host) => {
        made[host] = await this.docker.createContainer({
          name: containerName(id, host),
          Hostname: host,
          Image: image,
          Cmd: ['sleep', 'infinity'],
          Labels: { [LAB_LABEL]: id, [HOST_LABEL]: host, ...ownerLabels(record.owner) },
          HostConfig: {
            NetworkMode: 'none',
            CapAdd: [...CAPABILITIES],
            Sysctls: sysctls[host],
            Init: true,
            Binds: [`${distSrc}:${DIST_MOUNT}:ro`],
          },
        });
      }));
      const containers = made as Record<Node, Docker.Container>;
      await Promise.all(nodes.map((h) => containers[h].start()));
      const states = await Promise.all(nodes.map(async (h) => (await containers[h].inspect()).State));
      const pid = {} as Record<HostName, number> & Partial<Record<Node, number>>;
      nodes.forEach((h, i) => {
        const state = states[i];
        if (!state?.Running || !(state.Pid > 0)) {
          throw new LabError(`container ${containerName(id, h)} is not running (${state?.Status ?? 'unknown'}, exit ${state?.ExitCode ?? '?'}${state?.Error ? `: ${state.Error}` : ''})`);
        }
        pid[h] = state.Pid;
      });
      await this.wire(pid);
      return new DockerLab(record, this.docker, hostsOf(pid));
    } catch (e) {
      await removeLabelled(this.docker, `${LAB_LABEL}=${id}`).then(() => forgetLab(record)).catch(() => undefined);
      if (e instanceof LabError) throw e;
      throw new LabError(`could not build docker lab ${id}: ${messageOf(e)}`, 'check `docker ps -a`; then run: rstlab cleanup');
    }
  }

  async attach(id: string): Promise<Lab> {
    const record = await readLabRecord(id);
    if (!record?.owner.kept || record.backend !== 'docker') throw new InputError(`no kept docker lab ${id} (rstlab lab ls shows them)`);
    const pid = {} as Record<HostName, number> & Partial<Record<LabHost, number>>;
    for (const h of HOSTS) {
      const state = await this.docker.getContainer(containerName(id, h)).inspect().then((c) => c.State, () => undefined);
      if (!state?.Running || !(state.Pid > 0)) throw new LabError(`kept lab ${id}: container ${containerName(id, h)} is not running`, `remove it: rstlab lab down ${id}`);
      pid[h] = state.Pid;
    }
    // a kept lab made for a scenario with an impostor has it too
    const impostor = await this.docker.getContainer(containerName(id, 'impostor')).inspect().then((c) => c.State, () => undefined);
    if (impostor?.Running && impostor.Pid > 0) pid.impostor = impostor.Pid;
    return new DockerLab(record, this.docker, hostsOf(pid));
  }

  async labs(): Promise<FoundLab[]> {
    const containers = await this.docker.listContainers({ all: true, filters: JSON.stringify({ label: [LAB_LABEL] }) });
    const byId = new Map<string, FoundLab>();
    for (const c of containers) {
      const id = c.Labels[LAB_LABEL]!;
      const found = byId.get(id) ?? { id, backend: 'docker' as const, names: [] };
      found.names.push((c.Names[0] ?? c.Id).replace(/^\//, ''));
      const owner = ownerFromLabels(c.Labels);
      if (owner) found.owner = owner;
      byId.set(id, found);
    }
    return [...byId.values()];
  }

  async removeLab(found: FoundLab): Promise<string[]> {
    const { removed, failures } = await removeLabelled(this.docker, `${LAB_LABEL}=${found.id}`);
    if (failures.length > 0) throw new LabError(`cleanup could not remove: ${failures.join('; ')}`, 'see `docker ps -a --filter label=rstlab.lab`');
    return removed.map((n) => `container ${n}`);
  }

  /** Veth pairs into the containers (one host process), then each host's /proc/sys/net and interfaces (one per host). */
  private async wire(pid: Record<HostName, number> & Partial<Record<Node, number>>): Promise<void> {
    const veth = await run('ip', ['-batch', '-'], vethBatch(pid));
    if (veth.code !== 0) throw new LabError(`ip could not make the lab's veth pairs: ${veth.stderr.trim()}`);
    const batches: Partial<Record<Node, string>> = { ...hostBatches(), impostor: impostorBatch(), switch: switchBatch(['fw', 'server', 'impostor']) };
    const nodes = (Object.keys(pid) as Node[]);
    const results = await Promise.all(nodes.map((h) => run('nsenter', ['-t', String(pid[h]), '-n', '-m', 'sh', '-c', HOST_SETUP], batches[h])));
    // arp_notify on the impostor's eth0, which exists only now (Docker sets sysctls before any interface)
    if (pid.impostor !== undefined) {
      results.push(await run('nsenter', ['-t', String(pid.impostor), '-n', '-m', 'sysctl', '-qw', ...Object.entries(IMPOSTOR_SYSCTLS).map(([k, v]) => `${k}=${v}`)]));
    }
    const failed = results.find((r) => r.code !== 0);
    if (failed) throw new LabError(`could not configure the lab's interfaces: ${failed.stderr.trim()}`);
  }

  /** Throws LabError when the Docker daemon cannot be reached, saying why. */
  async reachDaemon(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') {
        throw new LabError('no permission on the Docker socket', 'run as root, or add your user to the docker group');
      }
      if (!findInPath('dockerd') && !findInPath('docker')) {
        throw new LabError('Docker is not installed', 'install it: apt-get install docker.io, then start dockerd');
      }
      throw new LabError(`the Docker daemon is not running (${messageOf(e)})`, 'start it: systemctl start docker, or: dockerd >/var/log/dockerd.log 2>&1 &');
    }
  }

  /** The lab image's tag, built on first use (once per backend, also when labs come up in parallel). */
  private ensureImage(): Promise<string> {
    this.image ??= this.buildImageIfMissing().catch((e: unknown) => {
      this.image = undefined;
      throw e;
    });
    return this.image;
  }

  private buildImageIfMissing(): Promise<string> {
    const o = this.options;
    return ensureImage({
      docker: this.docker, root: this.root, log: this.log, reachDaemon: () => this.reachDaemon(),
      ...(o.baseImage ? { baseImage: o.baseImage } : {}),
      ...(o.imageRepository ? { repository: o.imageRepository, noCache: true } : {}),
    });
  }
}

/** The docker backend with its defaults. */
export const dockerBackend: Backend = new DockerBackend();
