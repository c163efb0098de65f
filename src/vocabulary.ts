// The lab's vocabulary, written once and imported by everything else: the hosts and the
// capture points, the fixed addresses and paths of every lab (docs/DESIGN.md "The lab"),
// the TTL model that tells who sent a packet, the TCP segment and the observation types a
// run produces, and the grammar of seq/ack relations. It imports nothing, so every part of
// rstlab (the agent included) may import it.

// ---------------------------------------------------------------------------------------
// Hosts and capture points

/** The three hosts of every lab, in the order of the path from client to server. */
export const HOSTS = ['client', 'firewall', 'server'] as const;
export type Host = (typeof HOSTS)[number];
/** The name the lab backends use for a host; the same thing as Host. */
export type HostName = Host;

/**
 * Hosts a lab holds only when a scenario asks for them: `impostor`, a third host on the
 * server's network (net B then becomes a switch), which can take the server's address
 * (docs/DESIGN.md "The lab"; ../shared/RST-CAUSES.md §10). It runs no agent.
 */
export const EXTRA_HOSTS = ['impostor'] as const;
export type ExtraHost = (typeof EXTRA_HOSTS)[number];
/** Any host a lab may hold. */
export type LabHost = Host | ExtraHost;

/** The ends of a connection: the hosts that run applications. */
export const END_HOSTS = ['client', 'server'] as const satisfies readonly Host[];
export type EndHost = (typeof END_HOSTS)[number];

/** Where tcpdump can listen: each end host's interface, and both of the firewall's. */
export const CAPTURE_POINTS = ['client', 'firewall-a', 'firewall-b', 'server'] as const;
export type CapturePoint = (typeof CAPTURE_POINTS)[number];

/** The variant a scenario file describes at its top level: the one that shows the cause. */
export const CAUSE_VARIANT = 'cause';

// ---------------------------------------------------------------------------------------
// Addresses and topology

/** The fixed topology of every lab, on every backend (docs/DESIGN.md "The lab"). */
export const TOPOLOGY = {
  client: { address: '10.0.1.2', prefix: 24, gateway: '10.0.1.1', interfaces: ['eth0'] },
  firewall: { addresses: { eth0: '10.0.1.1', eth1: '10.0.2.1' }, prefix: 24, interfaces: ['eth0', 'eth1'] },
  server: { address: '10.0.2.2', prefix: 24, gateway: '10.0.2.1', interfaces: ['eth0'] },
  subnets: { a: '10.0.1.0/24', b: '10.0.2.0/24' },
} as const;

/**
 * The same lab over IPv6 (every lab is dual-stack, on both backends): unique local
 * addresses (RFC 4193, fd00::/8), one /64 per net, the firewall ::1 on each, the end hosts ::2.
 */
export const TOPOLOGY6 = {
  client: { address: 'fd00:1::2', prefix: 64, gateway: 'fd00:1::1' },
  firewall: { addresses: { eth0: 'fd00:1::1', eth1: 'fd00:2::1' }, prefix: 64 },
  server: { address: 'fd00:2::2', prefix: 64, gateway: 'fd00:2::1' },
  subnets: { a: 'fd00:1::/64', b: 'fd00:2::/64' },
} as const;

/** The IP versions a run can use: every scenario and firewall-test row runs over one of them. */
export const FAMILIES = [4, 6] as const;
export type Family = (typeof FAMILIES)[number];
/** What TTL is called in each family's header (IPv6: hop limit, RFC 8200 §3). */
export const TTL_WORD: Record<Family, string> = { 4: 'TTL', 6: 'hop limit' };

/** The lab's addresses in one family. */
export function topologyOf(family: Family): { client: { address: string; gateway: string }; server: { address: string; gateway: string }; firewall: { addresses: { eth0: string; eth1: string } }; subnets: { a: string; b: string } } {
  return family === 6 ? TOPOLOGY6 : TOPOLOGY;
}

/** The address of each end host (IPv4). */
export const ADDRESS: Record<EndHost, string> = {
  client: TOPOLOGY.client.address,
  server: TOPOLOGY.server.address,
};

/** The address of an end host in a family. */
export function addressOf(host: EndHost, family: Family = 4): string {
  return topologyOf(family)[host].address;
}

/** The firewall's own addresses (one on each net), IPv4. */
export const FIREWALL_ADDRESSES: readonly string[] = Object.values(TOPOLOGY.firewall.addresses);

/** The firewall's own addresses in a family. */
export function firewallAddresses(family: Family = 4): readonly string[] {
  return Object.values(topologyOf(family).firewall.addresses);
}

/** The family of an address as text: IPv6 has colons. */
export function familyOf(address: string): Family {
  return address.includes(':') ? 6 : 4;
}

/** address:port for messages; an IPv6 address in brackets (RFC 3986 §3.2.2), so the port stays apart. */
export function endpointText(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Where each capture point listens: a host and one of its interfaces. */
export const CAPTURE_INTERFACE = {
  client: { host: 'client', iface: 'eth0' },
  'firewall-a': { host: 'firewall', iface: 'eth0' },
  'firewall-b': { host: 'firewall', iface: 'eth1' },
  server: { host: 'server', iface: 'eth0' },
} as const satisfies Record<CapturePoint, { host: Host; iface: string }>;

/** The host each capture point belongs to. */
export const POINT_HOST: Record<CapturePoint, Host> = {
  client: CAPTURE_INTERFACE.client.host,
  'firewall-a': CAPTURE_INTERFACE['firewall-a'].host,
  'firewall-b': CAPTURE_INTERFACE['firewall-b'].host,
  server: CAPTURE_INTERFACE.server.host,
};

export const HOST_OF_ADDRESS: ReadonlyMap<string, Host> = new Map<string, Host>(
  [TOPOLOGY, TOPOLOGY6].flatMap((t) => [
    [t.client.address, 'client'],
    [t.server.address, 'server'],
    [t.firewall.addresses.eth0, 'firewall'],
    [t.firewall.addresses.eth1, 'firewall'],
  ] as [string, Host][]),
);

/** The lab host that owns an address (IPv4 or IPv6); undefined for any other address. */
export function hostOf(address: string): Host | undefined {
  return HOST_OF_ADDRESS.get(address);
}

/** An address with the host it belongs to, for messages. */
export function hostLabel(address: string): string {
  return `${address} (${hostOf(address) ?? 'not a lab host'})`;
}

function ipv4(address: string): number | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  if (!m) return undefined;
  return m.slice(1).reduce((acc, part) => acc * 256 + Number(part), 0);
}

/** An IPv6 address's 128 bits; undefined for anything else. */
export function ipv6Bits(address: string): bigint | undefined {
  if (!/^[0-9a-fA-F:]+$/.test(address) || address.split('::').length > 2) return undefined;
  const [head, tail] = address.includes('::') ? address.split('::') as [string, string] : [address, undefined];
  const words = (s: string) => (s === '' ? [] : s.split(':'));
  const h = words(head);
  const t = tail === undefined ? [] : words(tail);
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** Whether an address (IPv4 or IPv6) lies in a subnet of the same family. */
export function inSubnet(address: string, cidr: string): boolean {
  const [net, bits] = cidr.split('/');
  if (familyOf(cidr) === 6) {
    const a = ipv6Bits(address);
    const n = ipv6Bits(net ?? '');
    if (a === undefined || n === undefined) return false;
    const shift = BigInt(128 - Number(bits));
    return a >> shift === n >> shift;
  }
  const a = ipv4(address);
  const n = ipv4(net ?? '');
  if (a === undefined || n === undefined) return false;
  const size = 2 ** (32 - Number(bits));
  return Math.floor(a / size) === Math.floor(n / size);
}

/** RFC 5952 text form of 16 address bytes, as inet_ntop (and so tcpdump and the kernel's
 * tracepoints) print it: "fd00:1::2", "::1"; a v4-mapped address as ::ffff:a.b.c.d. */
export function formatIPv6(a: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((a[i]! << 8) | a[i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${[...a.subarray(12)].join('.')}`;
  // Longest run of two or more zero groups (the first one on a tie) becomes "::".
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

// ---------------------------------------------------------------------------------------
// Paths and the TTL model

/** The capture points a packet crosses on its way into net A (the client's side), in order. */
export const PATH_TO_A: readonly CapturePoint[] = ['server', 'firewall-b', 'firewall-a', 'client'];
/** ... and into net B (the server's side). */
export const PATH_TO_B: readonly CapturePoint[] = ['client', 'firewall-a', 'firewall-b', 'server'];
/** On either path the firewall forwards between the 2nd and the 3rd point: from index 2 on, one hop is lost. */
export const FIRST_POINT_PAST_ROUTER = 2;
/** Linux's net.ipv4.ip_default_ttl, and the IPv6 hop limit (net.ipv6.conf.*.hop_limit); every lab host keeps both. */
export const DEFAULT_TTL = 64;

/** The path a packet takes, from its destination's subnet (else from its source's). */
export function pathOf(p: { src: string; dst: string }): readonly CapturePoint[] {
  const { subnets } = topologyOf(familyOf(p.dst));
  if (inSubnet(p.dst, subnets.a)) return PATH_TO_A;
  if (inSubnet(p.dst, subnets.b)) return PATH_TO_B;
  if (inSubnet(p.src, subnets.a)) return PATH_TO_B;
  return PATH_TO_A;
}

// ---------------------------------------------------------------------------------------
// A TCP segment, as a capture point saw it (produced by the pcap/pcapng decoder)

export interface TcpPacket {
  /** seconds since the epoch, with the capture's own precision (µs or ns) */
  time: number;
  ipVersion: 4 | 6;
  src: string;
  dst: string;
  /** TTL (IPv4) or hop limit (IPv6) */
  ttl: number;
  /** IPv4 identification; 0 for IPv6 */
  ipId: number;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  /** the TCP flag bits: FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE 0x40, CWR 0x80 */
  flags: number;
  window: number;
  /** TCP payload length in bytes (from the IP length, not the captured length) */
  payloadLength: number;
  options: TcpOptions;
  /** the Ethernet source address (aa:bb:cc:dd:ee:ff), where the capture's link layer has one */
  srcMac?: string;
}

/** An ARP packet (RFC 826) as a capture point saw it (captured where a lab has an impostor). */
export interface ArpPacket {
  time: number;
  /** the Ethernet source address of the frame */
  srcMac: string;
  op: 'request' | 'reply';
  senderMac: string;
  senderIp: string;
  targetIp: string;
  /** a gratuitous ARP: a host announcing its own address (sender IP = target IP, RFC 5227 §3) */
  gratuitous: boolean;
}

export interface TcpOptions {
  mss?: number;
  wscale?: number;
  sackOk?: boolean;
  timestamp?: { value: number; echo: number };
}

/**
 * An ICMP error (RFC 792: destination unreachable, type 3; time exceeded, 11; ICMPv6
 * RFC 4443: destination unreachable, type 1) as a capture point saw it, with the TCP header
 * it quotes: the quoted segment ties the error to the connection it is about.
 */
export interface IcmpError {
  time: number;
  ipVersion: 4 | 6;
  /** who sent the error (a firewall REJECT sends it from the firewall's own address) */
  src: string;
  dst: string;
  ttl: number;
  type: number;
  code: number;
  /** the quoted IP header and the first 8 bytes of its TCP header (ports and seq) */
  quoted: { src: string; dst: string; sport: number; dport: number; seq: number };
}

export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

/** Flags as tcpdump writes them: "S", "S.", "P.", "R", "R.", "F." ... */
export function flagString(flags: number): string {
  let s = '';
  if (flags & TCP.SYN) s += 'S';
  if (flags & TCP.FIN) s += 'F';
  if (flags & TCP.PSH) s += 'P';
  if (flags & TCP.RST) s += 'R';
  if (flags & TCP.URG) s += 'U';
  if (flags & TCP.ECE) s += 'E';
  if (flags & TCP.CWR) s += 'W';
  if (flags & TCP.ACK) s += '.';
  return s || 'none';
}

// ---------------------------------------------------------------------------------------
// Observations: everything a run observed, as the verifier receives it (the packets of
// each capture point, what the application on each end of each connection saw, kernel
// counters, socket snapshots and the kernel's own reasons for the RSTs it sent)

/** Something the application saw on one end of a connection. */
export interface AppEvent {
  /** ms since the run's first step */
  t: number;
  event: 'connected' | 'accepted' | 'data' | 'end' | 'error' | 'closed';
  /** for error: the errno name, e.g. ECONNRESET */
  code?: string;
  bytes?: number;
}

/** One end of a connection: the host it lives in, its ports, what its application saw. */
export interface ConnEnd {
  host: EndHost;
  localPort?: number;
  remotePort?: number;
  events: AppEvent[];
}

/** A connection named in the scenario: the end that connected, and (once accepted) the other. */
export interface ConnObservation {
  id: string;
  initiator: ConnEnd;
  acceptor?: ConnEnd;
}

/** A TCP socket as /proc/net/tcp lists it. */
export interface SocketEntry {
  state: string; // ESTABLISHED, TIME-WAIT, ... as ss names them
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
}

/** One tcp:tcp_send_reset event: the kernel sent a RST from a socket (or for a missing one). */
export interface KernelReset {
  time: number;
  /** the tracepoint's skaddr: the kernel's (hashed) name of the socket that sent it, if any */
  socket?: string;
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
  state: string;
  reason: string;
}

export interface Observations {
  packets: Partial<Record<CapturePoint, TcpPacket[]>>;
  conns: Record<string, ConnObservation>;
  counters: Partial<Record<Host, { before: Record<string, number>; after: Record<string, number> }>>;
  snapshots: Partial<Record<EndHost, Record<string, SocketEntry[]>>>;
  /** undefined where tracefs was not available */
  kernelResets?: KernelReset[];
  /** ICMP errors about TCP segments, by capture point (the verifier's judges look at TCP only) */
  icmp?: Partial<Record<CapturePoint, IcmpError[]>>;
  /** ARP packets of each capture point; only where the lab has an impostor (ARP is captured then) */
  arps?: Partial<Record<CapturePoint, ArpPacket[]>>;
}

// ---------------------------------------------------------------------------------------
// seq / ack relations: the seq and ack of an expected RST, as a number or a relation to
// the flow's own packets. The schema accepts exactly what parseSeqRelation understands.
//   answered.seq|ack [+-N]  the last packet of the flow that came to the RST's sender before it
//   syn.seq|ack, synack.seq|ack [+-N]  the flow's first SYN / SYN-ACK
//   snd_nxt / rcv_nxt      the sender's next sequence number / the next one it expected from its peer

export const SEQ_RELATION = /^(snd_nxt|rcv_nxt|(answered|syn|synack)\.(seq|ack)(?:\s*([+-])\s*(\d+))?)$/;
export const SEQ_RELATION_WORDS = 'a number, snd_nxt, rcv_nxt, or answered|syn|synack .seq|.ack [+ N]';

export type SeqRelation =
  | { kind: 'number'; value: number }
  | { kind: 'snd_nxt' | 'rcv_nxt' }
  | { kind: 'packet'; base: 'answered' | 'syn' | 'synack'; field: 'seq' | 'ack'; offset: number };

/** A relation as written in a scenario file; undefined for text outside the grammar. */
export function parseSeqRelation(relation: number | string): SeqRelation | undefined {
  if (typeof relation === 'number') return { kind: 'number', value: relation };
  const m = SEQ_RELATION.exec(relation);
  if (!m) return undefined;
  const [, whole, base, field, sign, amount] = m;
  if (whole === 'snd_nxt' || whole === 'rcv_nxt') return { kind: whole };
  return {
    kind: 'packet',
    base: base as 'answered' | 'syn' | 'synack',
    field: field as 'seq' | 'ack',
    offset: (sign === '-' ? -1 : 1) * Number(amount ?? 0),
  };
}
