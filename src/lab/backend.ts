// The one interface between the rest of rstlab and a lab backend (netns or docker).
// Nothing outside src/lab/ knows which backend it talks to. The lab's addresses and
// host names are the vocabulary's (src/vocabulary.ts).
import type { Readable, Writable } from 'node:stream';
import { TOPOLOGY, TOPOLOGY6, type HostName, type LabHost } from '../vocabulary.js';
import type { Tool } from './tools.js';
import type { Owner, PortRange } from './owner.js';

export type { HostName, LabHost };

/** The backends, by the name --backend takes. */
export const BACKENDS = ['netns', 'docker'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** Set in each host when the lab is built, on every backend: the firewall routes between its
 * two networks, in both families, and the end hosts never do (a new namespace may copy the
 * host's ip_forward, which is 1 wherever Docker runs). IPv6 forwarding is set through `all`,
 * which the kernel copies to `default` and to every interface (addrconf_fixup_forwarding). */
export const HOST_SYSCTLS: Record<HostName, Record<string, string>> = {
  client: { 'net.ipv4.ip_forward': '0', 'net.ipv6.conf.all.forwarding': '0' },
  firewall: { 'net.ipv4.ip_forward': '1', 'net.ipv6.conf.all.forwarding': '1' },
  server: { 'net.ipv4.ip_forward': '0', 'net.ipv6.conf.all.forwarding': '0' },
};

/**
 * No duplicate address detection (RFC 4862 §5.4) in the lab: its addresses are fixed and
 * unique, and while an address (the link-local one included) is tentative the first
 * connections stall for about 2 s (checked here in a fresh namespace). accept_dad must be 0
 * on each interface before it goes up (its link-local address is made then), and the lab's
 * own addresses are added with `nodad`. `all` and `default` are set too, for interfaces
 * made later (a kept lab's, Docker's, which are made after the container's sysctls).
 */
export function noDadSysctls(interfaces: readonly string[] = []): Record<string, string> {
  return Object.fromEntries(['all', 'default', ...interfaces].map((i) => [`net.ipv6.conf.${i}.accept_dad`, '0']));
}

/** Each host's interfaces (its veth ends), whose sysctls exist once they do. */
export const HOST_INTERFACES: Record<HostName, readonly string[]> = {
  client: ['eth0'],
  firewall: ['eth0', 'eth1'],
  server: ['eth0'],
};

/**
 * The iproute2 batch that configures each host once its veth ends are in it (and their
 * accept_dad is 0): the same interfaces, addresses and routes on every backend, dual-stack.
 */
export function hostBatches(): Record<HostName, string> {
  const { client, firewall, server } = TOPOLOGY;
  const v6 = TOPOLOGY6;
  return {
    client: [
      'link set lo up',
      'link set eth0 up',
      `addr add ${client.address}/${client.prefix} dev eth0`,
      `addr add ${v6.client.address}/${v6.client.prefix} dev eth0 nodad`,
      `route add default via ${client.gateway}`,
      `route add default via ${v6.client.gateway}`,
    ].join('\n'),
    firewall: [
      'link set lo up',
      'link set eth0 up',
      'link set eth1 up',
      `addr add ${firewall.addresses.eth0}/${firewall.prefix} dev eth0`,
      `addr add ${firewall.addresses.eth1}/${firewall.prefix} dev eth1`,
      `addr add ${v6.firewall.addresses.eth0}/${v6.firewall.prefix} dev eth0 nodad`,
      `addr add ${v6.firewall.addresses.eth1}/${v6.firewall.prefix} dev eth1 nodad`,
    ].join('\n'),
    server: [
      'link set lo up',
      'link set eth0 up',
      `addr add ${server.address}/${server.prefix} dev eth0`,
      `addr add ${v6.server.address}/${v6.server.prefix} dev eth0 nodad`,
      `route add default via ${server.gateway}`,
      `route add default via ${v6.server.gateway}`,
    ].join('\n'),
  };
}

/** What a lab holds beyond its three hosts, when a scenario asks for it. */
export interface LabOptions {
  /**
   * A third host, `impostor`, on the server's network: net B becomes a switch (a Linux
   * bridge) joining the firewall's eth1, the server's eth0 and the impostor's eth0. The
   * capture points stay where they are. The impostor starts without an address.
   */
  impostor?: boolean;
}

/** The impostor's MAC addresses: it starts with the first; `announce` moves it to the second
 * (each change of a hardware address with arp_notify=1 sends a gratuitous ARP). Locally
 * administered (the 0x02 bit), so they never clash with a real vendor's. */
export const IMPOSTOR_MACS = ['02:00:00:00:0b:01', '02:00:00:00:0b:02'] as const;

/** The impostor's sysctls: arp_notify=1 announces its address whenever its MAC changes
 * (Documentation/networking/ip-sysctl.rst, arp_notify); it never routes. */
export const IMPOSTOR_SYSCTLS: Record<string, string> = {
  'net.ipv4.ip_forward': '0',
  'net.ipv4.conf.eth0.arp_notify': '1',
};

/** The impostor's iproute2 batch: its link up with the first MAC, no address yet. */
export function impostorBatch(): string {
  return ['link set lo up', `link set eth0 address ${IMPOSTOR_MACS[0]}`, 'link set eth0 up'].join('\n');
}

/** The switch of net B: a bridge (STP off: ports forward at once) over the given ports. */
export function switchBatch(ports: readonly string[]): string {
  return ['link add br0 type bridge', ...ports.map((p) => `link set ${p} master br0`), ...ports.map((p) => `link set ${p} up`), 'link set br0 up'].join('\n');
}

/**
 * The impostor takes `address` on net B and announces it: the address first (a route back
 * through the firewall, so that its RSTs reach the client), then a change of MAC, which with
 * arp_notify=1 sends a gratuitous ARP; a second change 1.2 s later sends another, because a
 * neighbour entry updated less than locktime (1 s) ago ignores a new one (../shared/RST-CAUSES.md §10).
 */
export async function announce(lab: Lab, address: string, signal?: AbortSignal): Promise<void> {
  const ip = async (batch: string) => {
    const r = await lab.exec('impostor', ['ip', '-batch', '-'], batch);
    if (r.code !== 0) throw new Error(`the impostor could not take ${address}: ${r.stderr.trim()}`);
  };
  const { prefix, gateway } = TOPOLOGY.server;
  await ip([`addr add ${address}/${prefix} dev eth0`, `route add default via ${gateway}`, `link set eth0 address ${IMPOSTOR_MACS[1]}`].join('\n'));
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 1_200);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
  await ip(`link set eth0 address ${IMPOSTOR_MACS[0]}`);
}

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
  /** The lab's own ephemeral ports (its end hosts' ip_local_port_range; owner.ts): pinned
   * ports are chosen from it, and a kernel trace event is this lab's only if one of its
   * ports is in it. */
  readonly ports: PortRange;
  /** Start a long-running process in a host (an agent, tcpdump). argv[0] is looked up in the host's PATH. */
  spawn(host: LabHost, argv: string[]): LabProcess;
  /** Run a short command in a host and collect its output. */
  exec(host: LabHost, argv: string[], stdin?: string): Promise<ExecResult>;
  /** The command line that starts an agent in a host (node + the compiled agent). */
  agentArgv(host: HostName): string[];
  /** The command line that runs argv in a host with this terminal attached (rstlab lab
   * shell / exec): the host's own tools, interactive where `tty` is set. */
  terminalArgv(host: HostName, argv: string[], tty: boolean): string[];
  down(): Promise<void>;
}

export interface UpOptions {
  /** a kept lab outlives the process that made it (rstlab lab up; owner.ts): cleanup leaves
   * it alone, and only `rstlab lab down` removes it */
  kept?: boolean;
  /** hold an impostor on the server's network (LabOptions) */
  impostor?: boolean;
}

export interface Backend {
  readonly name: BackendName;
  /** Throws LabError (exit 3) with what to install or how to run, when the lab cannot be built here.
   * `tools`: what the planned runs need beyond BASE_TOOLS (tools.ts toolsFor). */
  check(tools?: readonly Tool[]): Promise<void>;
  /** Build a lab, owned by this process (its record is written before anything is made,
   * and removed after all of it is gone); on any failure, whatever was made is removed
   * before the error is rethrown. */
  up(id: string, opts?: UpOptions): Promise<Lab>;
  /** A kept lab that is up (made by `rstlab lab up`, maybe by another process): to run in,
   * not to take down (its down() removes it, which only `rstlab lab down` does). Throws
   * InputError when there is no such kept lab. */
  attach(id: string): Promise<Lab>;
  /** Every lab of this backend on this machine (by name prefix or label), whoever owns it. */
  labs(): Promise<FoundLab[]>;
  /** Remove a lab found by labs(): kill what runs in it and delete it; returns what it removed. */
  removeLab(lab: FoundLab): Promise<string[]>;
}

/** A lab that exists on the machine, as cleanup finds it. */
export interface FoundLab {
  id: string;
  backend: BackendName;
  /** its namespaces or containers */
  names: string[];
  /** from the lab's record (netns) or its labels (Docker); undefined when it has none */
  owner?: Owner;
}

/** Each host's sysctls at lab build: HOST_SYSCTLS, no DAD (all, default), and on the end
 * hosts the lab's own ephemeral ports. net.ipv4.ip_local_port_range governs IPv6 sockets too
 * (inet6_hash_connect uses the namespace's one range: checked by the dual-stack test). */
export function portRangeSysctls(ports: PortRange): Record<HostName, Record<string, string>> {
  const range = { 'net.ipv4.ip_local_port_range': `${ports.min} ${ports.max}` };
  return {
    client: { ...HOST_SYSCTLS.client, ...noDadSysctls(), ...range },
    firewall: { ...HOST_SYSCTLS.firewall, ...noDadSysctls() },
    server: { ...HOST_SYSCTLS.server, ...noDadSysctls(), ...range },
  };
}

/** A new lab id: short, unique across parallel runs, safe in interface names (IFNAMSIZ 15). */
export function newLabId(): string {
  const t = Date.now().toString(36).slice(-4);
  const r = Math.floor(Math.random() * 36 ** 3).toString(36).padStart(3, '0');
  return `${t}${r}`;
}
