// One TCP segment as a capture point saw it. Produced by the pcap/pcapng decoder.
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
}

export interface TcpOptions {
  mss?: number;
  wscale?: number;
  sackOk?: boolean;
  timestamp?: { value: number; echo: number };
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
