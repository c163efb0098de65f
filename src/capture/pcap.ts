// A small decoder for the captures tcpdump writes: classic pcap and pcapng,
// link types Ethernet / Linux cooked (SLL, SLL2) / raw IP, IPv4 and IPv6: TCP segments,
// and the ICMP errors that quote a TCP segment (a firewall's REJECT with an ICMP error).
// Everything else is skipped silently; the verifier only ever asks questions about TCP
// segments, and decodeCapture gives it nothing else.
//
// Format references:
//   pcap:   draft-ietf-opsawg-pcap (https://www.tcpdump.org/manpages/pcap-savefile.5.html)
//   pcapng: draft-ietf-opsawg-pcapng
//   link types: https://www.tcpdump.org/linktypes.html
// Checksums are deliberately not checked: on loopback (and with any checksum
// offload) the kernel hands tcpdump segments whose checksum is not filled in.

import { readFile } from 'node:fs/promises';
import { formatIPv6, type IcmpError, type TcpOptions, type TcpPacket } from '../vocabulary.js';

const PCAP_MAGIC_USEC = 0xa1b2c3d4;
const PCAP_MAGIC_NSEC = 0xa1b23c4d;
/** pcapng Section Header Block type: a palindrome, so it reads the same in both byte orders. */
const PCAPNG_SHB = 0x0a0d0d0a;
/** pcapng byte-order magic inside the SHB; tells the section's byte order. */
const PCAPNG_BOM = 0x1a2b3c4d;

const PCAPNG_IDB = 0x00000001;
const PCAPNG_SPB = 0x00000003;
const PCAPNG_EPB = 0x00000006;

export const LINKTYPE_ETHERNET = 1;
const LINKTYPE_RAW = 101;
const LINKTYPE_LINUX_SLL = 113;
const LINKTYPE_LINUX_SLL2 = 276;

export const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_VLAN = 0x8100; // 802.1Q
export const ETHERTYPE_QINQ = 0x88a8; // 802.1ad outer tag

const IPPROTO_TCP = 6;
const IPPROTO_ICMP = 1;
const IPPROTO_ICMPV6 = 58;
/** ICMP errors that quote the datagram they are about (RFC 792): unreachable, time exceeded, parameter problem. */
const ICMP_ERRORS = new Set([3, 11, 12]);
/** ICMPv6 errors (RFC 4443 §3): unreachable, packet too big, time exceeded, parameter problem. */
const ICMPV6_ERRORS = new Set([1, 2, 3, 4]);

/** Where a frame came from: its link type, timestamp, the captured bytes and the length it had on the wire. */
export interface Frame {
  linkType: number;
  time: number;
  data: Buffer;
  origLen: number;
}

/** A frame with the TCP segment decoded from it, if it holds one. */
export interface CapturedFrame extends Frame {
  packet: TcpPacket | undefined;
}

export async function decodeCaptureFile(path: string): Promise<TcpPacket[]> {
  return decodeCapture(await readFile(path));
}

/** Decodes a classic pcap or pcapng capture into its TCP segments, in file order. */
export function decodeCapture(buf: Buffer): TcpPacket[] {
  return decodeCaptureWithIcmp(buf).tcp;
}

export async function decodeCaptureFileWithIcmp(path: string): Promise<{ tcp: TcpPacket[]; icmp: IcmpError[] }> {
  return decodeCaptureWithIcmp(await readFile(path));
}

/** Its TCP segments and its ICMP errors about TCP segments, each in file order. */
export function decodeCaptureWithIcmp(buf: Buffer): { tcp: TcpPacket[]; icmp: IcmpError[] } {
  const tcp: TcpPacket[] = [];
  const icmp: IcmpError[] = [];
  for (const frame of readFrames(buf)) {
    const p = decodeFrame(frame);
    if (p && 'flags' in p) tcp.push(p);
    else if (p) icmp.push(p);
  }
  return { tcp, icmp };
}

/** Every frame of a capture in file order, with its TCP segment: the n-th frame that holds
 * one carries decodeCapture's n-th packet (all.pcapng finds a RST's frame by that index). */
export function captureFrames(buf: Buffer): CapturedFrame[] {
  return readFrames(buf).map((f) => {
    const p = decodeFrame(f);
    return { ...f, packet: p && 'flags' in p ? p : undefined };
  });
}

/** Where a capture file ended early: its last record or block was cut short. */
export interface Cut {
  truncated: boolean;
}

export function readFrames(buf: Buffer, cut: Cut = { truncated: false }): Frame[] {
  if (buf.length >= 4) {
    const be = buf.readUInt32BE(0);
    if (be === PCAPNG_SHB) return readPcapng(buf, cut);
    const le = buf.readUInt32LE(0);
    // The writer stores the magic in its own byte order, so the order in which it
    // reads back as a known magic is the order of every header field after it.
    if (le === PCAP_MAGIC_USEC || le === PCAP_MAGIC_NSEC) return readPcap(buf, true, cut);
    if (be === PCAP_MAGIC_USEC || be === PCAP_MAGIC_NSEC) return readPcap(buf, false, cut);
  }
  const head = buf.subarray(0, 4).toString('hex') || 'empty';
  throw new Error(`not a pcap or pcapng capture (starts with ${head})`);
}

/** Unsigned readers for one byte order. */
function reader(buf: Buffer, le: boolean) {
  return {
    u16: (o: number) => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o)),
    u32: (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o)),
  };
}

// --- classic pcap -----------------------------------------------------------

function readPcap(buf: Buffer, le: boolean, cut: Cut): Frame[] {
  const { u32 } = reader(buf, le);
  const frames: Frame[] = [];
  // File header: magic, version (2+2), thiszone, sigfigs, snaplen, linktype = 24 bytes.
  if (buf.length < 24) {
    cut.truncated = true; // cut before the header was complete
    return frames;
  }
  const nano = u32(0) === PCAP_MAGIC_NSEC;
  // The low 16 bits are the link type; the upper bits may carry FCS information.
  const linkType = u32(20) & 0xffff;
  let off = 24;
  // Record header: ts_sec, ts_usec (or ts_nsec), incl_len, orig_len.
  while (off + 16 <= buf.length) {
    const sec = u32(off);
    const frac = u32(off + 4);
    const inclLen = u32(off + 8);
    const start = off + 16;
    // A record whose bytes run past the end is a write cut short (tcpdump killed): stop.
    if (start + inclLen > buf.length) break;
    frames.push({ linkType, time: sec + frac / (nano ? 1e9 : 1e6), data: buf.subarray(start, start + inclLen), origLen: u32(off + 12) });
    off = start + inclLen;
  }
  if (off < buf.length) cut.truncated = true; // a record header or its bytes cut short
  return frames;
}

// --- pcapng -----------------------------------------------------------------

interface Interface {
  linkType: number;
  snapLen: number;
  /** timestamp units per second (10^6 unless if_tsresol says otherwise) */
  unitsPerSec: bigint;
  /** if_tsoffset: seconds to add to every timestamp */
  offsetSec: number;
}

function readPcapng(buf: Buffer, cut: Cut): Frame[] {
  const frames: Frame[] = [];
  let interfaces: Interface[] = [];
  let le = true;
  let off = 0;
  // Every block: type (4), total length (4), body, total length again (4);
  // the total length includes padding and is a multiple of 4.
  while (off + 12 <= buf.length) {
    if (buf.readUInt32BE(off) === PCAPNG_SHB) {
      // A new section may switch byte order; its BOM follows the length.
      const bom = buf.readUInt32LE(off + 8);
      if (bom === PCAPNG_BOM) le = true;
      else if (bom === 0x4d3c2b1a) le = false;
      else throw new Error('not a pcap or pcapng capture (bad pcapng byte-order magic)');
      interfaces = []; // interface ids are per section
    }
    const { u16, u32 } = reader(buf, le);
    const type = u32(off);
    const total = u32(off + 4);
    if (total < 12 || total % 4 !== 0) break; // corrupt: nothing after this is trustworthy
    if (off + total > buf.length) break; // block cut short (capture killed mid-write)
    const body = off + 8;
    const bodyEnd = off + total - 4;

    if (type === PCAPNG_IDB) {
      // linktype (2), reserved (2), snaplen (4), options
      const iface: Interface = { linkType: u16(body), snapLen: u32(body + 4), unitsPerSec: 1_000_000n, offsetSec: 0 };
      forEachOption(buf, le, body + 8, bodyEnd, (code, o, len) => {
        if (code === 9 && len >= 1) {
          // if_tsresol: MSB clear = 10^-n seconds, MSB set = 2^-n seconds.
          const v = buf.readUInt8(o);
          iface.unitsPerSec = v & 0x80 ? 1n << BigInt(v & 0x7f) : 10n ** BigInt(v);
        } else if (code === 14 && len >= 8) {
          // if_tsoffset: a signed 64-bit number of seconds added to each timestamp.
          iface.offsetSec = Number(le ? buf.readBigInt64LE(o) : buf.readBigInt64BE(o));
        }
      });
      interfaces.push(iface);
    } else if (type === PCAPNG_EPB) {
      // interface id, timestamp high, timestamp low, captured len, original len, data
      const iface = interfaces[u32(body)];
      const capLen = u32(body + 12);
      const start = body + 20;
      if (iface && start + capLen <= bodyEnd) {
        const ts = (BigInt(u32(body + 4)) << 32n) | BigInt(u32(body + 8));
        frames.push({ linkType: iface.linkType, time: toSeconds(ts, iface), data: buf.subarray(start, start + capLen), origLen: u32(body + 16) });
      }
    } else if (type === PCAPNG_SPB) {
      // original len, data. An SPB belongs to interface 0 and has no timestamp;
      // its captured length is the smaller of the original length and the
      // interface's snaplen. We report time 0, as libpcap does.
      const iface = interfaces[0];
      if (iface) {
        const origLen = u32(body);
        const start = body + 4;
        let capLen = Math.min(origLen, bodyEnd - start);
        if (iface.snapLen > 0) capLen = Math.min(capLen, iface.snapLen);
        frames.push({ linkType: iface.linkType, time: 0, data: buf.subarray(start, start + capLen), origLen });
      }
    }
    // Anything else (SHB body, Name Resolution, Interface Statistics, custom...) is skipped.
    off += total;
  }
  if (off < buf.length) cut.truncated = true; // a block cut short or corrupt: read up to it
  return frames;
}

/** Walks a pcapng option list: code (2), length (2), value padded to 4; code 0 ends it. */
function forEachOption(buf: Buffer, le: boolean, off: number, end: number, fn: (code: number, valueOff: number, len: number) => void): void {
  const { u16 } = reader(buf, le);
  while (off + 4 <= end) {
    const code = u16(off);
    const len = u16(off + 2);
    if (code === 0 || off + 4 + len > end) return; // opt_endofopt, or a broken option
    fn(code, off + 4, len);
    off += 4 + Math.ceil(len / 4) * 4;
  }
}

function toSeconds(ts: bigint, iface: Interface): number {
  const whole = ts / iface.unitsPerSec;
  const frac = ts % iface.unitsPerSec;
  return Number(whole) + iface.offsetSec + Number(frac) / Number(iface.unitsPerSec);
}

// --- link layer -------------------------------------------------------------

export function decodeFrame(frame: Frame): TcpPacket | IcmpError | undefined {
  const { data } = frame;
  let etherType: number;
  let off: number;
  switch (frame.linkType) {
    case LINKTYPE_ETHERNET: {
      // dst MAC (6), src MAC (6), EtherType (2); 802.1Q/802.1ad tags insert 4
      // bytes (TPID + TCI) before the real EtherType, possibly stacked.
      if (data.length < 14) return undefined;
      off = 12;
      etherType = data.readUInt16BE(off);
      while ((etherType === ETHERTYPE_VLAN || etherType === ETHERTYPE_QINQ) && off + 6 <= data.length) {
        off += 4;
        etherType = data.readUInt16BE(off);
      }
      off += 2;
      break;
    }
    case LINKTYPE_LINUX_SLL:
      // packet type (2), ARPHRD type (2), addr len (2), addr (8), protocol (2)
      if (data.length < 16) return undefined;
      etherType = data.readUInt16BE(14);
      off = 16;
      break;
    case LINKTYPE_LINUX_SLL2:
      // protocol (2), reserved (2), ifindex (4), ARPHRD (2), packet type (1), addr len (1), addr (8)
      if (data.length < 20) return undefined;
      etherType = data.readUInt16BE(0);
      off = 20;
      break;
    case LINKTYPE_RAW:
      // No link header: the IP version nibble says which IP it is.
      if (data.length < 1) return undefined;
      etherType = data[0]! >> 4 === 6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4;
      off = 0;
      break;
    default:
      return undefined;
  }
  const ip = data.subarray(off);
  if (etherType === ETHERTYPE_IPV4) return decodeIPv4(ip, frame.time);
  if (etherType === ETHERTYPE_IPV6) return decodeIPv6(ip, frame.time);
  return undefined;
}

// --- IP ---------------------------------------------------------------------

/** IPv4 (RFC 791). */
function decodeIPv4(ip: Buffer, time: number): TcpPacket | IcmpError | undefined {
  if (ip.length < 20 || ip[0]! >> 4 !== 4) return undefined;
  const headerLen = (ip[0]! & 0x0f) * 4; // IHL counts 32-bit words; > 20 means IP options
  const totalLen = ip.readUInt16BE(2);
  // Only the first fragment (offset 0) carries the TCP header.
  if ((ip.readUInt16BE(6) & 0x1fff) !== 0) return undefined;
  if (headerLen < 20 || totalLen < headerLen) return undefined;
  const head = {
    ipVersion: 4 as const,
    src: ip.subarray(12, 16).join('.'),
    dst: ip.subarray(16, 20).join('.'),
    ttl: ip[8]!,
    ipId: ip.readUInt16BE(4),
  };
  if (ip[9] === IPPROTO_ICMP) return decodeIcmp(ip.subarray(headerLen), head, time);
  if (ip[9] !== IPPROTO_TCP) return undefined;
  return decodeTcp(ip.subarray(headerLen), totalLen - headerLen, head, time);
}

/**
 * An ICMPv4 error: type, code, checksum, 4 unused bytes, then the offending datagram's IP
 * header and at least its first 8 bytes (RFC 792; RFC 1812 §4.3.2.3: routers quote more),
 * which for TCP are the ports and the sequence number.
 */
function decodeIcmp(icmp: Buffer, head: IpHead, time: number): IcmpError | undefined {
  if (icmp.length < 8 || !ICMP_ERRORS.has(icmp[0]!)) return undefined;
  const inner = icmp.subarray(8);
  if (inner.length < 20 || inner[0]! >> 4 !== 4 || inner[9] !== IPPROTO_TCP) return undefined;
  const innerLen = (inner[0]! & 0x0f) * 4;
  const tcp = inner.subarray(innerLen);
  if (innerLen < 20 || tcp.length < 8) return undefined;
  return {
    time, ipVersion: 4, src: head.src, dst: head.dst, ttl: head.ttl, type: icmp[0]!, code: icmp[1]!,
    quoted: { src: inner.subarray(12, 16).join('.'), dst: inner.subarray(16, 20).join('.'), sport: tcp.readUInt16BE(0), dport: tcp.readUInt16BE(2), seq: tcp.readUInt32BE(4) },
  };
}

/** An ICMPv6 error (RFC 4443 §3): 8 bytes of header, then the offending packet from its IPv6 header on. */
function decodeIcmpv6(icmp: Buffer, head: IpHead, time: number): IcmpError | undefined {
  if (icmp.length < 8 || !ICMPV6_ERRORS.has(icmp[0]!)) return undefined;
  const inner = icmp.subarray(8);
  // Only a quoted packet whose next header is TCP itself (no extension headers) is tied to a flow.
  if (inner.length < 48 || inner[0]! >> 4 !== 6 || inner[6] !== IPPROTO_TCP) return undefined;
  const tcp = inner.subarray(40);
  return {
    time, ipVersion: 6, src: head.src, dst: head.dst, ttl: head.ttl, type: icmp[0]!, code: icmp[1]!,
    quoted: { src: formatIPv6(inner.subarray(8, 24)), dst: formatIPv6(inner.subarray(24, 40)), sport: tcp.readUInt16BE(0), dport: tcp.readUInt16BE(2), seq: tcp.readUInt32BE(4) },
  };
}

/** IPv6 (RFC 8200): fixed 40-byte header, then a chain of extension headers. */
function decodeIPv6(ip: Buffer, time: number): TcpPacket | IcmpError | undefined {
  if (ip.length < 40 || ip[0]! >> 4 !== 6) return undefined;
  const payloadLen = ip.readUInt16BE(4); // everything after the fixed header, extension headers included
  let next = ip[6]!;
  let off = 40;
  for (;;) {
    if (next === IPPROTO_TCP || next === IPPROTO_ICMPV6) break;
    if (off + 8 > ip.length) return undefined;
    if (next === 0 || next === 43 || next === 60) {
      // Hop-by-Hop, Routing, Destination Options: length in 8-byte units, not counting the first 8.
      const len = (ip[off + 1]! + 1) * 8;
      next = ip[off]!;
      off += len;
    } else if (next === 44) {
      // Fragment header, always 8 bytes. Only the first fragment has the TCP header.
      if (ip.readUInt16BE(off + 2) >> 3 !== 0) return undefined;
      next = ip[off]!;
      off += 8;
    } else {
      return undefined; // not TCP (or an extension header we do not walk, e.g. ESP)
    }
  }
  const tcpLen = 40 + payloadLen - off;
  if (tcpLen < 0) return undefined;
  const head = {
    ipVersion: 6 as const,
    src: formatIPv6(ip.subarray(8, 24)),
    dst: formatIPv6(ip.subarray(24, 40)),
    ttl: ip[7]!, // hop limit
    ipId: 0,
  };
  if (next === IPPROTO_ICMPV6) return decodeIcmpv6(ip.subarray(off), head, time);
  return decodeTcp(ip.subarray(off), tcpLen, head, time);
}

// --- TCP --------------------------------------------------------------------

type IpHead = Pick<TcpPacket, 'ipVersion' | 'src' | 'dst' | 'ttl' | 'ipId'>;

/**
 * TCP (RFC 9293). `tcp` is what was captured (it may be cut by the snaplen);
 * `segmentLen` is the segment length the IP header declares, which is what the
 * payload length is computed from.
 */
function decodeTcp(tcp: Buffer, segmentLen: number, head: IpHead, time: number): TcpPacket | undefined {
  if (tcp.length < 20) return undefined; // not even the fixed header was captured
  const headerLen = (tcp[12]! >> 4) * 4;
  if (headerLen < 20 || headerLen > segmentLen) return undefined;
  return {
    time,
    ...head,
    sport: tcp.readUInt16BE(0),
    dport: tcp.readUInt16BE(2),
    seq: tcp.readUInt32BE(4),
    ack: tcp.readUInt32BE(8),
    flags: tcp[13]!, // CWR ECE URG ACK PSH RST SYN FIN; the NS/AE bit in byte 12 is ignored
    window: tcp.readUInt16BE(14), // as sent, i.e. before window scaling
    payloadLength: segmentLen - headerLen,
    options: decodeTcpOptions(tcp.subarray(20, Math.min(headerLen, tcp.length))),
  };
}

/** TCP options: kind 0 = end, 1 = NOP, others are kind, length (incl. these 2 bytes), value. */
function decodeTcpOptions(opt: Buffer): TcpOptions {
  const options: TcpOptions = {};
  let i = 0;
  while (i < opt.length) {
    const kind = opt[i]!;
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    const len = opt[i + 1];
    if (len === undefined || len < 2 || i + len > opt.length) break; // malformed or cut by snaplen
    if (kind === 2 && len === 4) options.mss = opt.readUInt16BE(i + 2);
    else if (kind === 3 && len === 3) options.wscale = opt[i + 2]!; // RFC 7323
    else if (kind === 4 && len === 2) options.sackOk = true; // RFC 2018
    else if (kind === 8 && len === 10) options.timestamp = { value: opt.readUInt32BE(i + 2), echo: opt.readUInt32BE(i + 6) }; // RFC 7323
    i += len;
  }
  return options;
}
