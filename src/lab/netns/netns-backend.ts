// The default backend: the three lab hosts as Linux network namespaces joined by veth
// pairs, made with iproute2 in batch mode (one process for many commands).
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { InputError, LabError } from '../../errors.js';
import {
  HOST_INTERFACES, IMPOSTOR_SYSCTLS, LAB_PREFIX, hostBatches, impostorBatch, noDadSysctls, portRangeSysctls, switchBatch,
  type Backend, type ExecResult, type FoundLab, type HostName, type Lab, type LabHost, type LabOptions, type LabProcess,
} from '../backend.js';
import { EXTRA_HOSTS, HOSTS } from '../../vocabulary.js';
import { LAB_ENV, collect, hasCapabilities, run, start } from '../process.js';
import { BASE_TOOLS, requireTools } from '../tools.js';
import { claimLab, currentOwner, forgetLab, readLabRecord, type LabRecord, type PortRange } from '../owner.js';

const AGENT = fileURLToPath(new URL('../../agent/main.js', import.meta.url));

/** The namespace of net B's switch, where a lab has an impostor. */
const SWITCH = 'switch' as const;
export const namespaceOf = (id: string, host: LabHost | typeof SWITCH): string => `${LAB_PREFIX}${id}-${host}`;
const NAMESPACE = new RegExp(`^${LAB_PREFIX}(.+)-(${[...HOSTS, ...EXTRA_HOSTS, SWITCH].join('|')})$`);

/** The namespaces of a lab. */
function namespacesOf(id: string, options: LabOptions): string[] {
  const extra: (LabHost | typeof SWITCH)[] = options.impostor ? [...EXTRA_HOSTS, SWITCH] : [];
  return [...HOSTS, ...extra].map((h) => namespaceOf(id, h));
}

/** A shell command that sets one sysctl of the lab's own (names and values of our own making,
 * never a user's: net.* names of letters, digits, dots and underscores; numeric values). */
function procSysWrite(name: string, value: string): string {
  if (!/^net\.[a-z0-9_.]+$/.test(name) || !/^[0-9 ]+$/.test(value)) throw new Error(`not a lab sysctl: ${name}=${value}`);
  return `echo '${value}' > /proc/sys/${name.replaceAll('.', '/')}`;
}

/** The iproute2 batch that makes the namespaces and the veth pairs between them. */
export function namespacesBatch(id: string, options: LabOptions = {}): string {
  const ns = (h: LabHost | typeof SWITCH) => namespaceOf(id, h);
  // With an impostor, net B is a switch: each of its hosts is wired to a port of a bridge
  // in a namespace of its own, under the same interface names as without one.
  const netB = options.impostor
    ? [
        `link add eth1 netns ${ns('firewall')} type veth peer name fw netns ${ns(SWITCH)}`,
        `link add eth0 netns ${ns('server')} type veth peer name server netns ${ns(SWITCH)}`,
        `link add eth0 netns ${ns('impostor')} type veth peer name impostor netns ${ns(SWITCH)}`,
      ]
    : [`link add eth0 netns ${ns('server')} type veth peer name eth1 netns ${ns('firewall')}`];
  return [
    ...namespacesOf(id, options).map((n) => `netns add ${n}`),
    // Both ends are made directly inside their namespaces: no name ever exists in the
    // host's own namespace, so parallel labs cannot collide and nothing leaks there.
    `link add eth0 netns ${ns('client')} type veth peer name eth0 netns ${ns('firewall')}`,
    ...netB,
  ].join('\n');
}

class NetnsLab implements Lab {
  readonly backend = 'netns' as const;
  private readonly children = new Set<LabProcess>();
  private downed?: Promise<void>;
  readonly ports: PortRange;
  /** Marks every process of the lab, so that it can be told apart from other labs' (a test's leftover check reads it from /proc/PID/environ). */
  private readonly env: NodeJS.ProcessEnv;

  constructor(
    private readonly record: LabRecord,
    private readonly options: LabOptions = {},
  ) {
    this.ports = record.ports;
    this.env = { ...LAB_ENV, RSTLAB_LAB: record.id, RSTLAB_OWNER: String(record.owner.pid) };
  }

  get id(): string {
    return this.record.id;
  }

  spawn(host: LabHost, argv: string[]): LabProcess {
    // nsenter joins only the network namespace: lighter than `ip netns exec`, which
    // also makes a mount namespace to remount /sys.
    const proc = start('nsenter', [`--net=/run/netns/${namespaceOf(this.id, host)}`, '--', ...argv], this.env);
    this.children.add(proc);
    void proc.exited.then(() => this.children.delete(proc));
    return proc;
  }

  async exec(host: LabHost, argv: string[], stdin?: string): Promise<ExecResult> {
    const p = this.spawn(host, argv);
    return collect(p, stdin);
  }

  agentArgv(): string[] {
    return [process.execPath, AGENT];
  }

  terminalArgv(host: HostName, argv: string[]): string[] {
    return ['nsenter', `--net=/run/netns/${namespaceOf(this.id, host)}`, '--', ...argv];
  }

  down(): Promise<void> {
    this.downed ??= (async () => {
      for (const p of this.children) p.kill('SIGKILL');
      await Promise.all([...this.children].map((p) => p.exited));
      await removeNamespaces(namespacesOf(this.id, this.options));
      await forgetLab(this.record);
    })();
    return this.downed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.down();
  }
}

/** Kill whatever still runs in the namespaces, then delete them (their veths go with them). */
async function removeNamespaces(names: string[]): Promise<string[]> {
  const existing = new Set(await listNamespaces());
  const gone = names.filter((n) => existing.has(n));
  if (gone.length === 0) return [];
  const pids = await Promise.all(gone.map((n) => run('ip', ['netns', 'pids', n]).then((r) => r.stdout.split(/\s+/).filter(Boolean))));
  for (const pid of pids.flat()) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const r = await run('ip', ['-force', '-batch', '-'], gone.map((n) => `netns del ${n}`).join('\n'));
  if (r.code !== 0) {
    // Someone else (a cleanup beside the run) may have deleted some meanwhile: only what is
    // still there is a failure.
    const still = new Set(await listNamespaces());
    const left = gone.filter((n) => still.has(n));
    if (left.length > 0) throw new LabError(`could not delete namespaces ${left.join(', ')}: ${r.stderr.trim()}`);
  }
  return gone;
}

async function listNamespaces(): Promise<string[]> {
  try {
    return (await readdir('/run/netns')).filter((n) => n.startsWith(LAB_PREFIX));
  } catch {
    return [];
  }
}

export const netnsBackend: Backend = {
  name: 'netns',

  async check(tools = []) {
    // Every program a run starts in a lab host is this machine's own.
    requireTools([...BASE_TOOLS, ...tools]);
    if (!hasCapabilities('NET_ADMIN', 'SYS_ADMIN')) {
      throw new LabError('the netns lab needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)', 'run as root, e.g. sudo npm run scenario NAME');
    }
  },

  async up(id, opts = {}) {
    // The record first: whatever of the lab exists, cleanup can tell whose it is.
    const lab = new NetnsLab(await claimLab(id, 'netns', { ...currentOwner(), kept: opts.kept ?? false }), opts);
    const sysctls = portRangeSysctls(lab.ports);
    try {
      const root = await run('ip', ['-batch', '-'], namespacesBatch(id, opts));
      if (root.code !== 0) throw new LabError(`ip could not make the lab's namespaces: ${root.stderr.trim()}`);
      // Per host, one process: its sysctls first (accept_dad=0 on each interface before it
      // goes up: backend.ts noDadSysctls), then its interfaces, addresses and routes. The
      // sysctls are written by the shell itself (/proc/sys/net is the namespace of the
      // process that opens it), which costs no more than the parallel sysctl and ip did.
      const batches = hostBatches();
      const results = await Promise.all(HOSTS.map((h) => {
        const settings = { ...sysctls[h], ...noDadSysctls(HOST_INTERFACES[h]) };
        return run('nsenter', [`--net=/run/netns/${namespaceOf(id, h)}`, '--', 'sh', '-c', [...Object.entries(settings).map(([k, v]) => procSysWrite(k, v)), 'exec ip -batch -'].join(' && ')], batches[h]);
      }));
      if (opts.impostor) {
        results.push(
          await run('ip', ['-n', namespaceOf(id, SWITCH), '-batch', '-'], switchBatch(['fw', 'server', 'impostor'])),
          await run('ip', ['-n', namespaceOf(id, 'impostor'), '-batch', '-'], impostorBatch()),
          await run('nsenter', [`--net=/run/netns/${namespaceOf(id, 'impostor')}`, '--', 'sysctl', '-qw', ...Object.entries(IMPOSTOR_SYSCTLS).map(([k, v]) => `${k}=${v}`)]),
        );
      }
      const failed = results.find((r) => r.code !== 0);
      if (failed) throw new LabError(`could not configure the lab: ${failed.stderr.trim()}`);
      return lab;
    } catch (e) {
      await lab.down().catch(() => undefined);
      throw e;
    }
  },

  async attach(id) {
    const record = await readLabRecord(id);
    if (!record?.owner.kept || record.backend !== 'netns') throw new InputError(`no kept netns lab ${id} (rstlab lab ls shows them)`);
    const existing = new Set(await listNamespaces());
    const missing = HOSTS.filter((h) => !existing.has(namespaceOf(id, h)));
    if (missing.length > 0) throw new LabError(`kept lab ${id} has lost its ${missing.join(', ')} namespace(s)`, `remove it: rstlab lab down ${id}`);
    // a kept lab made for a scenario with an impostor has its namespaces too
    return new NetnsLab(record, { impostor: existing.has(namespaceOf(id, 'impostor')) });
  },

  async labs() {
    const byId = new Map<string, string[]>();
    for (const n of await listNamespaces()) {
      const id = NAMESPACE.exec(n)?.[1];
      if (id) byId.set(id, [...(byId.get(id) ?? []), n]);
    }
    return Promise.all([...byId].map(async ([id, names]): Promise<FoundLab> => {
      const owner = (await readLabRecord(id))?.owner;
      return { id, backend: 'netns', names, ...(owner ? { owner } : {}) };
    }));
  },

  async removeLab(found) {
    return (await removeNamespaces(found.names)).map((n) => `namespace ${n}`);
  },
};
