// Everything a run observed, as the verifier receives it: the packets of each capture
// point, what the application on each end of each connection saw, kernel counters,
// socket snapshots and the kernel's own reasons for the RSTs it sent.
import type { TcpPacket } from '../capture/packet.js';
import type { CAPTURE_POINTS, HOSTS } from '../scenario/schema.js';

export type CapturePoint = (typeof CAPTURE_POINTS)[number];
export type Host = (typeof HOSTS)[number];
export type EndHost = 'client' | 'server';

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
}
