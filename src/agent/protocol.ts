// The agent protocol: JSON lines over the agent's stdio. The runner sends a Request with
// an id; the agent answers it once with a Reply carrying the same id, and reports what
// the application saw at any time as AgentEvent lines (no id).
import type { AppEvent, SocketEntry } from '../vocabulary.js';

export type Request =
  | { cmd: 'sysctl'; name: string; value: string | number }
  | { cmd: 'counters' }
  | { cmd: 'snapshot' }
  | { cmd: 'listen'; listener: string; port: number; backlog?: number; accept: boolean; read: boolean }
  | { cmd: 'stopListener'; listener: string }
  | { cmd: 'connect'; conn: string; address: string; port: number; localPort?: number; keepAliveMs?: number; wait: boolean }
  | { cmd: 'send'; conn: string; bytes: number }
  | { cmd: 'close'; conn: string; how: 'end' | 'destroy' | 'abort' }
  | { cmd: 'resume'; conn: string }
  | { cmd: 'forge'; src: string; dst: string; sport: number; dport: number; seq: number; ack: number; flags: string; bytes: number };

export type RequestWithId = Request & { id: number };

export type Reply =
  | { id: number; ok: true; counters?: Record<string, number>; sockets?: SocketEntry[]; localPort?: number; listenerSockets?: string[] }
  | { id: number; ok: false; error: string };

/** Something the application saw on one socket. `conn` is the scenario's name for an
 * initiating end, or `<listener>#<n>` for an accepted one. */
export type AgentEvent = AppEvent & { conn: string; listener?: string; localPort?: number; remotePort?: number };

/** The first line an agent writes, once it is ready for requests. */
export interface Ready {
  ready: true;
}

export type AgentMessage = Reply | AgentEvent | Ready;
