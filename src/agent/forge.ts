// Forged segments: a TCP header of our own through a raw socket (the raw-socket native
// addon), for the causes that need a segment no normal socket would send (RFC 1337's
// old duplicate that hits a TIME-WAIT socket). The kernel adds the IP header.
import { createRequire } from 'node:module';
import type { Request } from './protocol.js';

type RawSocketModule = typeof import('raw-socket');
const require = createRequire(import.meta.url);

const FLAG_BITS: Record<string, number> = { F: 0x01, S: 0x02, R: 0x04, P: 0x08, '.': 0x10, U: 0x20 };

function flagBits(flags: string): number {
  let bits = 0;
  for (const c of flags) bits |= FLAG_BITS[c] ?? 0;
  return bits;
}

export function tcpSegment(r: Extract<Request, { cmd: 'forge' }>): Buffer {
  const seg = Buffer.alloc(20 + r.bytes, 'x');
  seg.writeUInt16BE(r.sport, 0);
  seg.writeUInt16BE(r.dport, 2);
  seg.writeUInt32BE(r.seq >>> 0, 4);
  seg.writeUInt32BE(r.ack >>> 0, 8);
  seg.writeUInt8(5 << 4, 12); // data offset: 5 words, no options
  seg.writeUInt8(flagBits(r.flags), 13);
  seg.writeUInt16BE(502, 14); // window
  seg.writeUInt16BE(0, 16); // checksum, below
  seg.writeUInt16BE(0, 18); // urgent pointer
  return seg;
}

function pseudoHeader(src: string, dst: string, length: number): Buffer {
  // RFC 9293 §3.1: source, destination, zero, protocol 6, TCP length
  const b = Buffer.alloc(12);
  src.split('.').forEach((o, i) => b.writeUInt8(Number(o), i));
  dst.split('.').forEach((o, i) => b.writeUInt8(Number(o), 4 + i));
  b.writeUInt8(6, 9);
  b.writeUInt16BE(length, 10);
  return b;
}

export async function forgeSegment(r: Extract<Request, { cmd: 'forge' }>): Promise<void> {
  const raw = require('raw-socket') as RawSocketModule;
  const seg = tcpSegment(r);
  raw.writeChecksum(seg, 16, raw.createChecksum(pseudoHeader(r.src, r.dst, seg.length), seg));
  const socket = raw.createSocket({ protocol: raw.Protocol.TCP });
  try {
    await new Promise<void>((resolve, reject) =>
      socket.send(seg, 0, seg.length, r.dst, null, (err) => (err ? reject(err) : resolve())),
    );
  } finally {
    socket.close();
  }
}
