// Forged segments: a TCP header of our own through a raw socket (the raw-socket native
// addon), for the causes that need a segment no normal socket would send (RFC 1337's
// old duplicate that hits a TIME-WAIT socket). The kernel adds the IP header (IPv4 or IPv6).
import { createRequire } from 'node:module';
import type { Request } from './protocol.js';
import { familyOf, ipv6Bits } from '../vocabulary.js';

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
  if (familyOf(dst) === 6) {
    // RFC 8200 §8.1: source, destination, upper-layer length (32 bits), 3 zero bytes, next header 6
    const b = Buffer.alloc(40);
    const put = (address: string, at: number) => {
      const bits = ipv6Bits(address);
      if (bits === undefined) throw new Error(`not an IPv6 address: ${address}`);
      for (let i = 0; i < 16; i++) b.writeUInt8(Number((bits >> BigInt(8 * (15 - i))) & 0xffn), at + i);
    };
    put(src, 0);
    put(dst, 16);
    b.writeUInt32BE(length, 32);
    b.writeUInt8(6, 39);
    return b;
  }
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
  // an IPv6 raw socket takes the TCP segment alone too: the kernel adds the IPv6 header
  const addressFamily = familyOf(r.dst) === 6 ? raw.AddressFamily.IPv6 : raw.AddressFamily.IPv4;
  const socket = raw.createSocket({ protocol: raw.Protocol.TCP, addressFamily });
  try {
    await new Promise<void>((resolve, reject) =>
      socket.send(seg, 0, seg.length, r.dst, null, (err) => (err ? reject(err) : resolve())),
    );
  } finally {
    socket.close();
  }
}
