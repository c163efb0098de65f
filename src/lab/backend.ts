// The one interface between the rest of rstlab and a lab backend (netns or docker).
// Nothing outside src/lab/ knows which backend it talks to.
import type { Readable, Writable } from 'node:stream';
import type { HOSTS } from '../scenario/schema.js';

export type HostName = (typeof HOSTS)[number];

/** The fixed topology of every lab, on every backend (DESIGN.md "The lab"). */
export const TOPOLOGY = {
  client: { address: '10.0.1.2', prefix: 24, gateway: '10.0.1.1', interfaces: ['eth0'] },
  firewall: { addresses: { eth0: '10.0.1.1', eth1: '10.0.2.1' }, prefix: 24, interfaces: ['eth0', 'eth1'] },
  server: { address: '10.0.2.2', prefix: 24, gateway: '10.0.2.1', interfaces: ['eth0'] },
  subnets: { a: '10.0.1.0/24', b: '10.0.2.0/24' },
} as const;

/** Set in each host when the lab is built, on every backend: the firewall routes between its
 * two networks and the end hosts never do (a new namespace may copy the host's ip_forward,
 * which is 1 wherever Docker runs). */
export const HOST_SYSCTLS: Record<HostName, Record<string, string>> = {
  client: { 'net.ipv4.ip_forward': '0' },
  firewall: { 'net.ipv4.ip_forward': '1' },
  server: { 'net.ipv4.ip_forward': '0' },
};

export const ADDRESS: Record<'client' | 'server', string> = {
  client: TOPOLOGY.client.address,
  server: TOPOLOGY.server.address,
};

/**
 * The iproute2 batch that configures each host once its veth ends are in it: the same
 * interfaces, addresses and routes on every backend.
 */
export function hostBatches(): Record<HostName, string> {
  const { client, firewall, server } = TOPOLOGY;
  return {
    client: [
      'link set lo up',
      'link set eth0 up',
      `addr add ${client.address}/${client.prefix} dev eth0`,
      `route add default via ${client.gateway}`,
    ].join('\n'),
    firewall: [
      'link set lo up',
      'link set eth0 up',
      'link set eth1 up',
      `addr add ${firewall.addresses.eth0}/${firewall.prefix} dev eth0`,
      `addr add ${firewall.addresses.eth1}/${firewall.prefix} dev eth1`,
    ].join('\n'),
    server: [
      'link set lo up',
      'link set eth0 up',
      `addr add ${server.address}/${server.prefix} dev eth0`,
      `route add default via ${server.gateway}`,
    ].join('\n'),
  };
}

/** Where each capture point listens: a host and one of its interfaces. */
export const CAPTURE_INTERFACE = {
  client: { host: 'client', iface: 'eth0' },
  'firewall-a': { host: 'firewall', iface: 'eth0' },
  'firewall-b': { host: 'firewall', iface: 'eth1' },
  server: { host: 'server', iface: 'eth0' },
} as const satisfies Record<string, { host: HostName; iface: string }>;

/** Prefix of every namespace, interface, container, network and label value a lab makes. */
export const LAB_PREFIX = 'rstlab-';

/** A process running inside a lab host, with its stdio. */
export interface LabProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** resolves when the process has ended */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  kill(signal?: NodeJS.Signals): void;
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A lab that is up. Taking it down is idempotent and also happens on dispose. */
export interface Lab extends AsyncDisposable {
  readonly id: string;
  readonly backend: BackendName;
  /** Start a long-running process in a host (an agent, tcpdump). argv[0] is looked up in the host's PATH. */
  spawn(host: HostName, argv: string[]): LabProcess;
  /** Run a short command in a host and collect its output. */
  exec(host: HostName, argv: string[], stdin?: string): Promise<ExecResult>;
  /** The command line that starts an agent in a host (node + the compiled agent). */
  agentArgv(host: HostName): string[];
  down(): Promise<void>;
}

export type BackendName = 'netns' | 'docker';

export interface Backend {
  readonly name: BackendName;
  /** Throws LabError (exit 3) with what to install or how to run, when the lab cannot be built here. */
  check(): Promise<void>;
  /** Build a lab; on any failure, whatever was made is removed before the error is rethrown. */
  up(id: string): Promise<Lab>;
  /** Remove everything with the rstlab prefix / label that a killed run left behind; returns what it removed. */
  cleanup(): Promise<string[]>;
}

/** A new lab id: short, unique across parallel runs, safe in interface names (IFNAMSIZ 15). */
export function newLabId(): string {
  const t = Date.now().toString(36).slice(-4);
  const r = Math.floor(Math.random() * 36 ** 3).toString(36).padStart(3, '0');
  return `${t}${r}`;
}
