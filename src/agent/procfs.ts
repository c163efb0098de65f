// Kernel counters and sockets of the agent's own network namespace, read from /proc
// (/proc/self/net follows the reading process's namespace): what nstat and ss show,
// without starting a process.
import { readFileSync } from 'node:fs';
import { formatIPv6, type SocketEntry } from '../vocabulary.js';

/** Counters named as nstat names them: TcpExtListenOverflows, TcpAttemptFails, ... */
export function readCounters(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const file of ['/proc/self/net/snmp', '/proc/self/net/netstat']) {
    // Each group is two lines, "Tcp: Name1 Name2 ..." then "Tcp: 1 2 ...".
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = lines[i]!.split(/\s+/);
      const values = lines[i + 1]!.split(/\s+/);
      const group = names[0]!.replace(/:$/, '');
      for (let j = 1; j < names.length; j++) out[group + names[j]] = Number(values[j]);
    }
  }
  return out;
}

// include/net/tcp_states.h, in ss's spelling
const STATES: Record<string, string> = {
  '01': 'ESTABLISHED', '02': 'SYN-SENT', '03': 'SYN-RECV', '04': 'FIN-WAIT-1', '05': 'FIN-WAIT-2',
  '06': 'TIME-WAIT', '07': 'CLOSE', '08': 'CLOSE-WAIT', '09': 'LAST-ACK', '0A': 'LISTEN', '0B': 'CLOSING',
};

function ipv4(hex: string): string {
  // /proc/net/tcp prints the address as a host-order 32-bit word: little-endian here.
  const n = parseInt(hex, 16);
  return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.');
}

/** An IPv6 address of /proc/net/tcp6 (four host-order words); a v4-mapped one as plain IPv4. */
function ipv6(hex: string): string {
  const bytes = Buffer.alloc(16);
  for (let w = 0; w < 4; w++) bytes.writeUInt32LE(parseInt(hex.slice(w * 8, w * 8 + 8), 16), w * 4);
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return [...bytes.subarray(12)].join('.');
  return formatIPv6(bytes); // as the capture and the tracepoint print it (RFC 5952)
}

/**
 * The kernel's name for each socket listening on `port`: the socket pointer /proc/net/tcp
 * prints (field 12). With kernel.kptr_restrict = 0 it is hashed exactly as the tracepoint
 * tcp_send_reset prints its skaddr, so a RST that a listener sent (which carries only the
 * listener's own address, [::]:8080 → [::]:0) can be tied to this lab's listener.
 */
export function listenerSockets(port: number): string[] {
  return (['tcp', 'tcp6'] as const).flatMap((file) => {
    let text: string;
    try {
      text = readFileSync(`/proc/self/net/${file}`, 'utf8');
    } catch {
      return [];
    }
    return text.trim().split('\n').slice(1).flatMap((line) => {
      const f = line.trim().split(/\s+/);
      return f[3] === '0A' && parseInt(f[1]!.split(':')[1]!, 16) === port && f[11] ? [f[11]] : [];
    });
  });
}

// Node listens on :: (dual-stack) by default: its accepted IPv4 connections are AF_INET6
// sockets with v4-mapped addresses, listed in tcp6, not tcp.
export function readSockets(): SocketEntry[] {
  return (['tcp', 'tcp6'] as const).flatMap((file) => {
    let text: string;
    try {
      text = readFileSync(`/proc/self/net/${file}`, 'utf8');
    } catch {
      return []; // no IPv6 in this kernel
    }
    const address = file === 'tcp' ? ipv4 : ipv6;
    return text.trim().split('\n').slice(1).map((line) => {
      const [, local, remote, st] = line.trim().split(/\s+/) as [string, string, string, string];
      const [la, lp] = local.split(':') as [string, string];
      const [ra, rp] = remote.split(':') as [string, string];
      return { state: STATES[st] ?? st, local: address(la), localPort: parseInt(lp, 16), remote: address(ra), remotePort: parseInt(rp, 16) };
    });
  });
}
