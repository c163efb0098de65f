// A pcapng writer (draft-ietf-opsawg-pcapng): one section, named interfaces, Enhanced
// Packet Blocks with packet comments. It is what Wireshark reads to show a packet's
// comment in its list and Expert Info (frame.comment) and each interface by its name
// (frame.interface_name), so one file can hold the four capture points of a run.
// Little-endian throughout; the byte-order magic in the section header says so.

const SHB = 0x0a0d0d0a;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const IDB = 0x00000001;
const EPB = 0x00000006;

const OPT_ENDOFOPT = 0;
const OPT_COMMENT = 1;
const SHB_OS = 3;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_DESCRIPTION = 3;
const IF_TSRESOL = 9;

export interface PcapngInterface {
  /** if_name: Wireshark's frame.interface_name */
  name: string;
  description?: string;
  linkType: number;
  snapLen: number;
}

export interface PcapngPacket {
  /** index into the interfaces */
  iface: number;
  /** seconds since the epoch; written in microseconds (if_tsresol 6, tcpdump's own resolution) */
  time: number;
  data: Buffer;
  /** the frame's length on the wire (more than data.length when the snap length cut it) */
  origLen: number;
  comment?: string;
}

export interface PcapngSection {
  /** opt_comment of the section header */
  comment?: string;
  application?: string;
  os?: string;
}

const pad4 = (n: number) => (4 - (n % 4)) % 4;

/** Options: code (2), length (2), value padded to 32 bits; opt_endofopt closes the list. */
function options(list: [number, Buffer | string | undefined][]): Buffer {
  const parts: Buffer[] = [];
  for (const [code, value] of list) {
    if (value === undefined) continue;
    const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    // An option's length is 16 bits: a longer value is cut.
    const body = v.subarray(0, 0xfff0);
    const head = Buffer.alloc(4);
    head.writeUInt16LE(code, 0);
    head.writeUInt16LE(body.length, 2);
    parts.push(head, body, Buffer.alloc(pad4(body.length)));
  }
  if (parts.length === 0) return Buffer.alloc(0);
  parts.push(Buffer.alloc(4)); // opt_endofopt, length 0
  return Buffer.concat(parts);
}

/** A block: type, total length, body (padded), total length again. */
function block(type: number, body: Buffer): Buffer {
  const total = 12 + body.length + pad4(body.length);
  const b = Buffer.alloc(total);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(total, 4);
  body.copy(b, 8);
  b.writeUInt32LE(total, total - 4);
  return b;
}

function sectionHeader(s: PcapngSection): Buffer {
  const fixed = Buffer.alloc(16);
  fixed.writeUInt32LE(BYTE_ORDER_MAGIC, 0);
  fixed.writeUInt16LE(1, 4); // major version
  fixed.writeUInt16LE(0, 6); // minor version
  fixed.writeBigInt64LE(-1n, 8); // section length: not given
  return block(SHB, Buffer.concat([fixed, options([[OPT_COMMENT, s.comment], [SHB_OS, s.os], [SHB_USERAPPL, s.application]])]));
}

function interfaceDescription(i: PcapngInterface): Buffer {
  const fixed = Buffer.alloc(8);
  fixed.writeUInt16LE(i.linkType, 0);
  fixed.writeUInt32LE(i.snapLen, 4);
  return block(IDB, Buffer.concat([fixed, options([[IF_NAME, i.name], [IF_DESCRIPTION, i.description], [IF_TSRESOL, Buffer.from([6])]])]));
}

function enhancedPacket(p: PcapngPacket): Buffer {
  const fixed = Buffer.alloc(20);
  // Math.round recovers the exact microsecond: a double holds epoch seconds to ~0.2 µs.
  const us = BigInt(Math.round(p.time * 1e6));
  fixed.writeUInt32LE(p.iface, 0);
  fixed.writeUInt32LE(Number(us >> 32n), 4);
  fixed.writeUInt32LE(Number(us & 0xffffffffn), 8);
  fixed.writeUInt32LE(p.data.length, 12);
  fixed.writeUInt32LE(Math.max(p.origLen, p.data.length), 16);
  return block(EPB, Buffer.concat([fixed, p.data, Buffer.alloc(pad4(p.data.length)), options([[OPT_COMMENT, p.comment]])]));
}

/** The whole file: a section header, the interfaces, then the packets in the order given. */
export function pcapng(section: PcapngSection, interfaces: readonly PcapngInterface[], packets: readonly PcapngPacket[]): Buffer {
  for (const p of packets) {
    if (!(p.iface >= 0 && p.iface < interfaces.length)) throw new Error(`packet on interface ${p.iface}, but there are ${interfaces.length}`);
  }
  return Buffer.concat([sectionHeader(section), ...interfaces.map(interfaceDescription), ...packets.map(enhancedPacket)]);
}
