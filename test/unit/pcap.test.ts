// The decoder against captures written by real tcpdump (test/fixtures/pcap, see
// make-fixtures.sh). Expected values are read off `tcpdump -nn -tt -S -v -r FILE`
// (add --time-stamp-precision=nano for the ns files). Variants tcpdump cannot make
// on loopback (big-endian files, VLAN tags, raw IP, IPv6 extension headers,
// fragments, SPBs) are derived in here from the real packets.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { decodeCapture, decodeCaptureFile } from '../../src/capture/pcap.js';
import { flagString, type TcpPacket } from '../../src/vocabulary.js';

// The compiled test runs from dist/test/unit/, three levels below the project root.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixture = (name: string) => `${root}test/fixtures/pcap/${name}`;
const load = (name: string) => readFileSync(fixture(name));

/** One packet in tcpdump's -nn -S words, but with seq and ack always present. */
function line(p: TcpPacket): string {
  return `${p.src}.${p.sport} > ${p.dst}.${p.dport}: Flags [${flagString(p.flags)}], seq ${p.seq}, ack ${p.ack}, win ${p.window}, length ${p.payloadLength}`;
}

// A double holds ~0.24 µs at today's epoch, so "to the ns" means "to the nearest double".
const NS_TOLERANCE = 2.5e-7;
// µs timestamps: anything under half a µs tells them apart.
const US_TOLERANCE = 4e-7;

/** The flag sequence of every capture here: one connection closed both ways, then a refused connect. */
const FLOW_FLAGS = ['S', 'S.', '.', 'P.', '.', 'P.', '.', 'F.', 'F.', '.', 'S', 'R.'];

const SYN_OPTIONS_V4 = { mss: 65495, sackOk: true, wscale: 10 };

describe('pcap decoder', () => {
  describe('IPv4 pcap, microseconds, Ethernet (ipv4-usec.pcap)', () => {
    const packets = decodeCapture(load('ipv4-usec.pcap'));

    it('finds every segment, in order', () => {
      expect(packets.map((p) => flagString(p.flags))).to.deep.equal(FLOW_FLAGS);
    });

    it('decodes the SYN with its options', () => {
      const syn = packets[0]!;
      expect(line(syn)).to.equal('127.0.0.1.49074 > 127.0.0.1.50101: Flags [S], seq 3296032194, ack 0, win 65495, length 0');
      expect(syn.time).to.be.closeTo(1795306146.44667, US_TOLERANCE);
      expect(syn.ipVersion).to.equal(4);
      expect(syn.ttl).to.equal(64);
      expect(syn.ipId).to.equal(63208);
      expect(syn.options).to.deep.equal({ ...SYN_OPTIONS_V4, timestamp: { value: 3986979708, echo: 0 } });
    });

    it('decodes data segments with their payload length', () => {
      expect(line(packets[3]!)).to.equal('127.0.0.1.49074 > 127.0.0.1.50101: Flags [P.], seq 3296032195, ack 3522181766, win 64, length 100');
      expect(packets[3]!.options).to.deep.equal({ timestamp: { value: 3986979714, echo: 4244676738 } });
      expect(line(packets[5]!)).to.equal('127.0.0.1.50101 > 127.0.0.1.49074: Flags [P.], seq 3522181766, ack 3296032295, win 64, length 5');
      expect(packets[5]!.ipId).to.equal(18887);
      expect(packets[5]!.time).to.be.closeTo(1795306146.454088, US_TOLERANCE);
    });

    it('decodes the RST answering the refused connect', () => {
      const rst = packets[11]!;
      expect(line(rst)).to.equal('127.0.0.1.50102 > 127.0.0.1.53324: Flags [R.], seq 0, ack 3268811806, win 0, length 0');
      expect(rst.time).to.be.closeTo(1795306146.459901, US_TOLERANCE);
      expect(rst.ttl).to.equal(64);
      expect(rst.ipId).to.equal(0);
      expect(rst.options).to.deep.equal({});
    });

    it('reads the same from a file', async () => {
      expect(await decodeCaptureFile(fixture('ipv4-usec.pcap'))).to.deep.equal(packets);
    });
  });

  describe('IPv4 pcap, nanoseconds (ipv4-nsec.pcap)', () => {
    const packets = decodeCapture(load('ipv4-nsec.pcap'));

    it('reads nanosecond timestamps', () => {
      expect(packets).to.have.length(12);
      expect(packets[0]!.time).to.be.closeTo(1795306148.506447803, NS_TOLERANCE);
      expect(packets[1]!.time).to.be.closeTo(1795306148.50651977, NS_TOLERANCE);
      expect(packets[11]!.time).to.be.closeTo(1795306148.517631073, NS_TOLERANCE);
    });

    it('decodes the handshake and the RST', () => {
      expect(line(packets[1]!)).to.equal('127.0.0.1.50101 > 127.0.0.1.48708: Flags [S.], seq 1492152051, ack 583128749, win 65483, length 0');
      expect(packets[1]!.options).to.deep.equal({ ...SYN_OPTIONS_V4, timestamp: { value: 1719919164, echo: 1174360814 } });
      expect(line(packets[11]!)).to.equal('127.0.0.1.50102 > 127.0.0.1.54314: Flags [R.], seq 0, ack 4113541110, win 0, length 0');
    });
  });

  describe('IPv6 pcap (ipv6.pcap)', () => {
    const packets = decodeCapture(load('ipv6.pcap'));

    it('finds every segment, in order', () => {
      expect(packets.map((p) => flagString(p.flags))).to.deep.equal(FLOW_FLAGS);
      expect(packets.every((p) => p.ipVersion === 6 && p.ipId === 0 && p.ttl === 64)).to.equal(true);
    });

    it('decodes addresses, options and payload lengths', () => {
      expect(line(packets[0]!)).to.equal('::1.46298 > ::1.50101: Flags [S], seq 1260186660, ack 0, win 65476, length 0');
      expect(packets[0]!.options).to.deep.equal({ mss: 65476, sackOk: true, wscale: 10, timestamp: { value: 2910663576, echo: 0 } });
      expect(packets[0]!.time).to.be.closeTo(1795306150.618479, US_TOLERANCE);
      expect(line(packets[3]!)).to.equal('::1.46298 > ::1.50101: Flags [P.], seq 1260186661, ack 789216019, win 64, length 100');
      expect(line(packets[5]!)).to.equal('::1.50101 > ::1.46298: Flags [P.], seq 789216019, ack 1260186761, win 64, length 5');
    });

    it('decodes the RST', () => {
      expect(line(packets[11]!)).to.equal('::1.50102 > ::1.47338: Flags [R.], seq 0, ack 3371170542, win 0, length 0');
      expect(packets[11]!.time).to.be.closeTo(1795306150.633587, US_TOLERANCE);
      expect(packets[11]!.options).to.deep.equal({});
    });
  });

  describe('snaplen shorter than the packet (ipv4-snap80.pcap, tcpdump -s 80)', () => {
    const packets = decodeCapture(load('ipv4-snap80.pcap'));

    it('takes the payload length from the IP header, not the captured bytes', () => {
      expect(packets.map((p) => flagString(p.flags))).to.deep.equal(FLOW_FLAGS);
      expect(line(packets[3]!)).to.equal('127.0.0.1.48712 > 127.0.0.1.50101: Flags [P.], seq 2439754578, ack 263005086, win 64, length 100');
      expect(packets[3]!.options).to.deep.equal({ timestamp: { value: 2269485715, echo: 1895429293 } });
      expect(line(packets[11]!)).to.equal('127.0.0.1.50102 > 127.0.0.1.54330: Flags [R.], seq 0, ack 2136979396, win 0, length 0');
    });
  });

  describe('Linux cooked captures (-i any)', () => {
    it('SLL v1, IPv4 (sll.pcap)', () => {
      const packets = decodeCapture(load('sll.pcap'));
      expect(packets.map((p) => flagString(p.flags))).to.deep.equal(FLOW_FLAGS);
      expect(line(packets[0]!)).to.equal('127.0.0.1.48720 > 127.0.0.1.50101: Flags [S], seq 486053008, ack 0, win 65495, length 0');
      expect(packets[0]!.ipId).to.equal(41942);
      expect(packets[0]!.time).to.be.closeTo(1795306154.670261, US_TOLERANCE);
      expect(line(packets[3]!)).to.equal('127.0.0.1.48720 > 127.0.0.1.50101: Flags [P.], seq 486053009, ack 3464593337, win 64, length 100');
      expect(line(packets[11]!)).to.equal('127.0.0.1.50102 > 127.0.0.1.54344: Flags [R.], seq 0, ack 2821041549, win 0, length 0');
      expect(packets[11]!.time).to.be.closeTo(1795306154.68233, US_TOLERANCE);
    });

    it('SLL v2, IPv6 (sll2.pcap)', () => {
      const packets = decodeCapture(load('sll2.pcap'));
      expect(packets.map((p) => flagString(p.flags))).to.deep.equal(FLOW_FLAGS);
      expect(line(packets[1]!)).to.equal('::1.50101 > ::1.46304: Flags [S.], seq 807742557, ack 725616946, win 65464, length 0');
      expect(packets[1]!.time).to.be.closeTo(1795306156.672289, US_TOLERANCE);
      expect(line(packets[5]!)).to.equal('::1.50101 > ::1.46304: Flags [P.], seq 807742558, ack 725617046, win 64, length 5');
      expect(line(packets[11]!)).to.equal('::1.50102 > ::1.47350: Flags [R.], seq 0, ack 944159978, win 0, length 0');
      expect(packets[11]!.ttl).to.equal(64);
    });
  });

  describe('pcapng (converted by editcap)', () => {
    it('with if_tsresol = 9 (ipv4-nsec.pcapng) decodes like the pcap it came from', () => {
      const packets = decodeCapture(load('ipv4-nsec.pcapng'));
      expect(packets[0]!.time).to.be.closeTo(1795306148.506447803, NS_TOLERANCE);
      expect(line(packets[11]!)).to.equal('127.0.0.1.50102 > 127.0.0.1.54314: Flags [R.], seq 0, ack 4113541110, win 0, length 0');
      expect(packets).to.deep.equal(decodeCapture(load('ipv4-nsec.pcap')));
    });

    it('without if_tsresol (ipv6.pcapng) uses microseconds', () => {
      const packets = decodeCapture(load('ipv6.pcapng'));
      expect(packets[11]!.time).to.be.closeTo(1795306150.633587, US_TOLERANCE);
      expect(line(packets[11]!)).to.equal('::1.50102 > ::1.47338: Flags [R.], seq 0, ack 3371170542, win 0, length 0');
      expect(packets).to.deep.equal(decodeCapture(load('ipv6.pcap')));
    });
  });

  describe('captures cut short', () => {
    it('ignores a truncated last record (truncated.pcap)', () => {
      const packets = decodeCapture(load('truncated.pcap'));
      // tcpdump -r prints 11 packets and then "truncated dump file".
      expect(packets).to.have.length(11);
      expect(line(packets[10]!)).to.equal('127.0.0.1.53324 > 127.0.0.1.50102: Flags [S], seq 3268811805, ack 0, win 65495, length 0');
    });

    for (const name of ['ipv4-usec.pcap', 'ipv4-nsec.pcapng']) {
      it(`never throws on any prefix of ${name} and yields a prefix of its packets`, () => {
        const buf = load(name);
        const all = decodeCapture(buf);
        let previous = 0;
        for (let n = 4; n < buf.length; n++) {
          const some = decodeCapture(buf.subarray(0, n));
          // JSON keeps this loop fast; the packets hold only numbers and strings.
          expect(JSON.stringify(some), `cut at ${n}`).to.equal(JSON.stringify(all.slice(0, some.length)));
          expect(some.length).to.be.at.least(previous);
          previous = some.length;
        }
        expect(previous).to.equal(all.length - 1);
      });
    }
  });

  describe('input that is not a capture', () => {
    it('throws on garbage', () => {
      expect(() => decodeCapture(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))).to.throw(Error, /not a pcap or pcapng/);
    });

    it('throws on an empty or tiny buffer', () => {
      expect(() => decodeCapture(Buffer.alloc(0))).to.throw(Error, /not a pcap or pcapng/);
      expect(() => decodeCapture(Buffer.from([0xd4, 0xc3]))).to.throw(Error, /not a pcap or pcapng/);
    });
  });

  describe('big-endian classic pcap', () => {
    for (const name of ['ipv4-usec.pcap', 'ipv4-nsec.pcap']) {
      it(`decodes ${name} rewritten big-endian the same`, () => {
        const le = load(name);
        const be = pcapToBigEndian(le);
        expect(be.readUInt32BE(0)).to.equal(le.readUInt32LE(0)); // same magic, other order
        expect(decodeCapture(be)).to.deep.equal(decodeCapture(le));
      });
    }
  });

  describe('pcapng variants', () => {
    const source = load('ipv4-nsec.pcap');
    const expected = decodeCapture(source);
    const records = pcapRecords(source);

    for (const le of [true, false]) {
      it(`${le ? 'little' : 'big'}-endian section, 2^-n resolution, unknown blocks skipped`, () => {
        // 2^-30 s units: ns timestamps converted exactly enough (error < 1 ns).
        const blocks = [shb(le), unknownBlock(le), idb(le, 1, 0x80 | 30)];
        for (const r of records) {
          const units = (BigInt(r.sec) << 30n) + (BigInt(r.frac) << 30n) / 1_000_000_000n;
          blocks.push(epb(le, 0, units, r.data), unknownBlock(le));
        }
        const packets = decodeCapture(Buffer.concat(blocks));
        expect(packets).to.have.length(expected.length);
        packets.forEach((p, i) => {
          expect(p.time).to.be.closeTo(expected[i]!.time, NS_TOLERANCE);
          expect({ ...p, time: 0 }).to.deep.equal({ ...expected[i]!, time: 0 });
        });
      });
    }

    it('Simple Packet Blocks (no timestamp: time 0), interface ids per section', () => {
      const blocks = [shb(false), idb(false, 1), ...records.map((r) => spb(false, r.data))];
      // A second section, little-endian this time, with an EPB for interface 1.
      blocks.push(shb(true), idb(true, 101), idb(true, 1, 9));
      blocks.push(epb(true, 1, BigInt(records[0]!.sec) * 1_000_000_000n + BigInt(records[0]!.frac), records[0]!.data));
      const packets = decodeCapture(Buffer.concat(blocks));
      expect(packets).to.have.length(expected.length + 1);
      expect(packets.slice(0, -1)).to.deep.equal(expected.map((p) => ({ ...p, time: 0 })));
      expect(packets.at(-1)).to.deep.equal(expected[0]);
    });
  });

  describe('link and IP variants derived from real packets', () => {
    const v4 = pcapRecords(load('ipv4-usec.pcap'));
    const v4Expected = decodeCapture(load('ipv4-usec.pcap'));
    const v6 = pcapRecords(load('ipv6.pcap'));
    const v6Expected = decodeCapture(load('ipv6.pcap'));

    it('raw IP (link type 101), IPv4 and IPv6', () => {
      expect(decodeCapture(pcap(101, v4.map((r) => ({ ...r, data: r.data.subarray(14) }))))).to.deep.equal(v4Expected);
      expect(decodeCapture(pcap(101, v6.map((r) => ({ ...r, data: r.data.subarray(14) }))))).to.deep.equal(v6Expected);
    });

    it('Ethernet with 802.1Q and stacked 802.1ad/802.1Q tags', () => {
      const tag = (tpid: number) => Buffer.from([tpid >> 8, tpid & 0xff, 0x00, 0x64]);
      const oneTag = v4.map((r) => ({ ...r, data: Buffer.concat([r.data.subarray(0, 12), tag(0x8100), r.data.subarray(12)]) }));
      const twoTags = v6.map((r) => ({ ...r, data: Buffer.concat([r.data.subarray(0, 12), tag(0x88a8), tag(0x8100), r.data.subarray(12)]) }));
      expect(decodeCapture(pcap(1, oneTag))).to.deep.equal(v4Expected);
      expect(decodeCapture(pcap(1, twoTags))).to.deep.equal(v6Expected);
    });

    it('IPv4 with options (IHL 6)', () => {
      const withOptions = v4.map((r) => {
        const ip = Buffer.concat([r.data.subarray(14, 34), Buffer.from([1, 1, 1, 0]), r.data.subarray(34)]); // NOP NOP NOP EOL
        ip[0] = 0x46;
        ip.writeUInt16BE(ip.readUInt16BE(2) + 4, 2);
        return { ...r, data: Buffer.concat([r.data.subarray(0, 14), ip]) };
      });
      expect(decodeCapture(pcap(1, withOptions))).to.deep.equal(v4Expected);
    });

    it('IPv4: skips non-first fragments and non-TCP, keeps first fragments', () => {
      const edit = (i: number, fn: (ip: Buffer) => void) => {
        const data = Buffer.from(v4[i]!.data);
        fn(data.subarray(14));
        return { ...v4[i]!, data };
      };
      const frames = [
        edit(0, (ip) => ip.writeUInt16BE(0x2000, 6)), // MF set, offset 0: first fragment, kept
        edit(3, (ip) => ip.writeUInt16BE(0x0010, 6)), // offset 16*8: not first, skipped
        edit(5, (ip) => (ip[9] = 17)), // UDP: skipped
        edit(11, () => {}),
      ];
      expect(decodeCapture(pcap(1, frames))).to.deep.equal([v4Expected[0], v4Expected[11]]);
    });

    it('IPv6: walks hop-by-hop, routing, destination options and fragment headers', () => {
      const chain = (fragOffset: number) =>
        v6.map((r) => {
          const ext = Buffer.from([
            43, 0, 1, 4, 0, 0, 0, 0, // Hop-by-Hop -> Routing; PadN
            60, 0, 0, 0, 0, 0, 0, 0, // Routing (type 0, segments left 0) -> Dest Opts
            44, 0, 1, 4, 0, 0, 0, 0, // Destination Options -> Fragment; PadN
            6, 0, fragOffset >> 5, (fragOffset << 3) & 0xff, 0, 0, 0, 1, // Fragment -> TCP
          ]);
          const ip = Buffer.concat([r.data.subarray(14, 54), ext, r.data.subarray(54)]);
          ip[6] = 0; // next header: Hop-by-Hop
          ip.writeUInt16BE(ip.readUInt16BE(4) + ext.length, 4);
          return { ...r, data: Buffer.concat([r.data.subarray(0, 14), ip]) };
        });
      expect(decodeCapture(pcap(1, chain(0)))).to.deep.equal(v6Expected);
      expect(decodeCapture(pcap(1, chain(1)))).to.deep.equal([]);
    });

    it('writes IPv6 addresses as RFC 5952 / inet_ntop does', () => {
      const readdress = (src: string, dst: string) => {
        const data = Buffer.from(v6[0]!.data);
        Buffer.from(src, 'hex').copy(data, 14 + 8);
        Buffer.from(dst, 'hex').copy(data, 14 + 24);
        const [p] = decodeCapture(pcap(1, [{ ...v6[0]!, data }]));
        return `${p!.src} ${p!.dst}`;
      };
      // longest zero run compressed, the first one on a tie; a lone zero group is not
      expect(readdress('20010db8000000000001000000000001', '20010db8000000010001000100010001')).to.equal('2001:db8::1:0:0:1 2001:db8:0:1:1:1:1:1');
      expect(readdress('fe800000000000000000000000000000', '00000000000000000000ffff7f000001')).to.equal('fe80:: ::ffff:127.0.0.1');
    });

    it('skips frames of other link types and EtherTypes', () => {
      const arp = { ...v4[0]!, data: Buffer.from(v4[0]!.data) };
      arp.data.writeUInt16BE(0x0806, 12);
      expect(decodeCapture(pcap(1, [arp, v4[11]!]))).to.deep.equal([v4Expected[11]]);
      expect(decodeCapture(pcap(105, v4))).to.deep.equal([]); // 802.11
    });
  });
});

// --- helpers that take real captures apart and put synthetic ones together ---

interface PcapRecord {
  sec: number;
  frac: number;
  data: Buffer;
}

/** The records of a little-endian classic pcap file. */
function pcapRecords(buf: Buffer): PcapRecord[] {
  const records: PcapRecord[] = [];
  for (let off = 24; off + 16 <= buf.length; ) {
    const len = buf.readUInt32LE(off + 8);
    records.push({ sec: buf.readUInt32LE(off), frac: buf.readUInt32LE(off + 4), data: buf.subarray(off + 16, off + 16 + len) });
    off += 16 + len;
  }
  return records;
}

/** A little-endian microsecond pcap file. */
function pcap(linkType: number, records: PcapRecord[]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(linkType, 20);
  const parts: Buffer[] = [header];
  for (const r of records) {
    const rh = Buffer.alloc(16);
    rh.writeUInt32LE(r.sec, 0);
    rh.writeUInt32LE(r.frac, 4);
    rh.writeUInt32LE(r.data.length, 8);
    rh.writeUInt32LE(r.data.length, 12);
    parts.push(rh, r.data);
  }
  return Buffer.concat(parts);
}

/** Swaps every header field of a little-endian pcap file, as a big-endian writer would have written it. */
function pcapToBigEndian(le: Buffer): Buffer {
  const be = Buffer.from(le);
  const swap32 = (o: number) => be.writeUInt32BE(le.readUInt32LE(o), o);
  const swap16 = (o: number) => be.writeUInt16BE(le.readUInt16LE(o), o);
  swap32(0);
  swap16(4);
  swap16(6);
  for (const o of [8, 12, 16, 20]) swap32(o);
  for (let off = 24; off + 16 <= le.length; ) {
    const len = le.readUInt32LE(off + 8);
    for (const o of [0, 4, 8, 12]) swap32(off + o);
    off += 16 + len;
  }
  return be;
}

/** A pcapng block: type, total length, body padded to 4, total length. */
function block(le: boolean, type: number, body: Buffer): Buffer {
  const padded = Buffer.concat([body, Buffer.alloc((4 - (body.length % 4)) % 4)]);
  const total = 12 + padded.length;
  const head = Buffer.alloc(8);
  const tail = Buffer.alloc(4);
  if (le) {
    head.writeUInt32LE(type, 0);
    head.writeUInt32LE(total, 4);
    tail.writeUInt32LE(total, 0);
  } else {
    head.writeUInt32BE(type, 0);
    head.writeUInt32BE(total, 4);
    tail.writeUInt32BE(total, 0);
  }
  return Buffer.concat([head, padded, tail]);
}

function fields(le: boolean, spec: [bits: 16 | 32, value: number][]): Buffer {
  const b = Buffer.alloc(spec.reduce((n, [bits]) => n + bits / 8, 0));
  let o = 0;
  for (const [bits, v] of spec) {
    if (bits === 16) o = le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o);
    else o = le ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o);
  }
  return b;
}

function shb(le: boolean): Buffer {
  // BOM, version 1.0, section length -1 (unknown)
  return block(le, 0x0a0d0d0a, fields(le, [[32, 0x1a2b3c4d], [16, 1], [16, 0], [32, 0xffffffff], [32, 0xffffffff]]));
}

function idb(le: boolean, linkType: number, tsresol?: number): Buffer {
  const body = [fields(le, [[16, linkType], [16, 0], [32, 262144]])];
  if (tsresol !== undefined) body.push(fields(le, [[16, 9], [16, 1]]), Buffer.from([tsresol, 0, 0, 0]), fields(le, [[16, 0], [16, 0]]));
  return block(le, 1, Buffer.concat(body));
}

function epb(le: boolean, iface: number, ts: bigint, data: Buffer): Buffer {
  const head = fields(le, [[32, iface], [32, Number(ts >> 32n)], [32, Number(ts & 0xffffffffn)], [32, data.length], [32, data.length]]);
  return block(le, 6, Buffer.concat([head, data]));
}

function spb(le: boolean, data: Buffer): Buffer {
  return block(le, 3, Buffer.concat([fields(le, [[32, data.length]]), data]));
}

/** A block type the decoder does not know (a custom block, 0x40000BAD), with 5 bytes of body. */
function unknownBlock(le: boolean): Buffer {
  return block(le, 0x40000bad, Buffer.from('hello'));
}
