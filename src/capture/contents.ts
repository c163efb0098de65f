// What `rstlab diagnose` reads from a capture beyond the TCP segments the verifier needs:
// the Ethernet source MAC of each segment (a RST from another MAC than the sender's earlier
// packets: a duplicate address), ARP (the gratuitous announcement before it), and whether
// the file was cut short (read up to where it ends, and say so).
import {
  ETHERTYPE_IPV4, ETHERTYPE_QINQ, ETHERTYPE_VLAN, LINKTYPE_ETHERNET, decodeFrame, readFrames, type Cut, type Frame,
} from './pcap.js';
import type { ArpPacket, IcmpError, TcpPacket } from '../vocabulary.js';

export type { ArpPacket };

/** Everything `rstlab diagnose` reads from a capture: TCP segments with their source MAC, ARP, and whether it was cut short. */
export interface CaptureContents {
  packets: TcpPacket[];
  arps: ArpPacket[];
  /** ICMP errors about TCP segments (decoded as the verifier's decoder does) */
  icmp: IcmpError[];
  truncated: boolean;
}

/** Like decodeCapture, with the Ethernet source MAC of each segment, the ARP packets and a truncation flag. */
export function readCapture(buf: Buffer): CaptureContents {
  const cut: Cut = { truncated: false };
  const packets: TcpPacket[] = [];
  const arps: ArpPacket[] = [];
  const icmp: IcmpError[] = [];
  for (const frame of readFrames(buf, cut)) {
    const p = decodeFrame(frame);
    if (p && !('flags' in p)) {
      icmp.push(p);
      continue;
    }
    if (p) {
      if (frame.linkType === LINKTYPE_ETHERNET && frame.data.length >= 12) p.srcMac = mac(frame.data, 6);
      packets.push(p);
      continue;
    }
    const arp = decodeArp(frame);
    if (arp) arps.push(arp);
  }
  return { packets, arps, icmp, truncated: cut.truncated };
}

const ETHERTYPE_ARP = 0x0806;

function mac(b: Buffer, off: number): string {
  return [...b.subarray(off, off + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** ARP for IPv4 over Ethernet (RFC 826): htype 1, ptype 0x0800, hlen 6, plen 4. */
function decodeArp(frame: Frame): ArpPacket | undefined {
  const d = frame.data;
  if (frame.linkType !== LINKTYPE_ETHERNET || d.length < 14 + 28) return undefined;
  let off = 12;
  let etherType = d.readUInt16BE(off);
  while ((etherType === ETHERTYPE_VLAN || etherType === ETHERTYPE_QINQ) && off + 6 <= d.length) {
    off += 4;
    etherType = d.readUInt16BE(off);
  }
  off += 2;
  if (etherType !== ETHERTYPE_ARP || d.length < off + 28) return undefined;
  if (d.readUInt16BE(off) !== 1 || d.readUInt16BE(off + 2) !== ETHERTYPE_IPV4 || d[off + 4] !== 6 || d[off + 5] !== 4) return undefined;
  const opcode = d.readUInt16BE(off + 6);
  if (opcode !== 1 && opcode !== 2) return undefined;
  const senderIp = d.subarray(off + 14, off + 18).join('.');
  const targetIp = d.subarray(off + 24, off + 28).join('.');
  return {
    time: frame.time,
    srcMac: mac(d, 6),
    op: opcode === 1 ? 'request' : 'reply',
    senderMac: mac(d, off + 8),
    senderIp,
    targetIp,
    gratuitous: senderIp === targetIp,
  };
}

