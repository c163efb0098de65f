// The pure parts of the teaching outputs: the pcapng writer (read back by the project's
// own decoder, snap-length cut frames included), relative seq/ack and scaled windows on
// hand-made flows (the integration test holds them against tshark on every scenario), the
// HTML report's escaping and its arrows, and every scenario's teaching notes.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { captureFrames, decodeCapture } from '../../src/capture/pcap.js';
import { pcapng } from '../../src/capture/pcapng-write.js';
import { seqNumbers } from '../../src/report/relative-seq.js';
import { esc, flagWords, packetLabel } from '../../src/report/html-ladder.js';
import { prose } from '../../src/report/html.js';
import { COMMON_CAUSES } from '../../src/scenario/causes.js';
import { listScenarios } from '../../src/scenario/load.js';
import { TCP, type TcpPacket } from '../../src/vocabulary.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

function pkt(over: Partial<TcpPacket>): TcpPacket {
  return {
    time: 1, ipVersion: 4, src: '10.0.1.2', dst: '10.0.2.2', ttl: 64, ipId: 1, sport: 40000, dport: 80,
    seq: 0, ack: 0, flags: TCP.ACK, window: 100, payloadLength: 0, options: {}, ...over,
  };
}
const back = (p: TcpPacket) => pkt({ ...p, src: p.dst, dst: p.src, sport: p.dport, dport: p.sport });

describe('pcapng writer', () => {
  const frames = captureFrames(readFileSync(`${root}test/fixtures/pcap/ipv4-usec.pcap`));

  it('writes named interfaces and commented packets that the decoder reads back, in order and to the microsecond', () => {
    const file = pcapng(
      { comment: 'a section comment', application: 'rstlab' },
      [{ name: 'client', linkType: frames[0]!.linkType, snapLen: 256 }, { name: 'server', description: 'x', linkType: frames[0]!.linkType, snapLen: 256 }],
      frames.map((f, i) => ({ iface: i % 2, time: f.time, data: f.data, origLen: f.origLen, ...(i === 1 ? { comment: 'RST #1 — ü' } : {}) })),
    );
    expect(file.readUInt32LE(0)).to.equal(0x0a0d0d0a);
    expect(file.length % 4).to.equal(0);
    const again = decodeCapture(file);
    const orig = frames.map((f) => f.packet!);
    expect(again.length).to.equal(orig.length);
    again.forEach((p, i) => {
      expect({ ...p, time: 0 }).to.deep.equal({ ...orig[i]!, time: 0 });
      expect(Math.abs(p.time - orig[i]!.time)).to.be.below(4e-7);
    });
    // the comment and the names are in the file as UTF-8
    expect(file.includes(Buffer.from('RST #1 — ü'))).to.equal(true);
    expect(file.includes(Buffer.from('client'))).to.equal(true);
  });

  it('keeps a frame cut by the snap length with its length on the wire', () => {
    const cut = captureFrames(readFileSync(`${root}test/fixtures/pcap/ipv4-snap80.pcap`)).find((f) => f.origLen > f.data.length);
    expect(cut, 'the fixture has a cut frame').to.not.equal(undefined);
    const file = pcapng({}, [{ name: 'client', linkType: cut!.linkType, snapLen: 80 }], [{ iface: 0, time: cut!.time, data: cut!.data, origLen: cut!.origLen }]);
    const [f] = captureFrames(file);
    expect(f!.data.length).to.equal(cut!.data.length);
    expect(f!.origLen).to.equal(cut!.origLen);
    expect(f!.packet?.payloadLength).to.equal(cut!.packet?.payloadLength);
  });

  it('refuses a packet on an interface it does not have', () => {
    expect(() => pcapng({}, [], [{ iface: 0, time: 1, data: Buffer.alloc(20), origLen: 20 }])).to.throw(/interface 0/);
  });
});

describe('relative sequence numbers', () => {
  const syn = pkt({ seq: 1000, flags: TCP.SYN, window: 64240, options: { wscale: 7 } });
  const synAck = back(pkt({ seq: 5000, ack: 1001, flags: TCP.SYN | TCP.ACK, window: 65160, options: { wscale: 7 } }));
  synAck.ack = 1001;
  const ack = pkt({ seq: 1001, ack: 5001, window: 502 });
  const data = pkt({ seq: 1001, ack: 5001, flags: TCP.ACK | TCP.PSH, payloadLength: 10, window: 502 });
  const rst = back(pkt({ seq: 5001, ack: 1011, flags: TCP.RST | TCP.ACK, window: 0 }));

  it('counts each direction from its ISN, as Wireshark does', () => {
    const n = seqNumbers([syn, synAck, ack, data, rst]);
    expect(n.map((x) => [x.seq, x.ack])).to.deep.equal([[0, 0], [0, 1], [1, 1], [1, 1], [1, 11]]);
  });

  it('scales windows once both SYNs carried the option, never a SYN’s own', () => {
    expect(seqNumbers([syn, synAck, ack, data, rst]).map((x) => x.win)).to.deep.equal([64240, 65160, 502 * 128, 502 * 128, 0]);
    const noScale = { ...synAck, options: {} };
    expect(seqNumbers([syn, noScale, ack]).map((x) => x.win)).to.deep.equal([64240, 65160, 502]);
  });

  it('without a SYN, a direction starts at 1; a reused port with a new ISN starts again', () => {
    const closed = back(pkt({ seq: 0, ack: 1001, flags: TCP.RST | TCP.ACK }));
    expect(seqNumbers([syn, closed]).map((x) => [x.seq, x.ack])).to.deep.equal([[0, 0], [1, 1]]);
    const again = pkt({ seq: 777, flags: TCP.SYN });
    const n = seqNumbers([syn, synAck, again, pkt({ seq: 778, ack: 5001 })]);
    expect(n[2]!.seq).to.equal(0);
    expect(n[3]!.seq).to.equal(1);
    expect(n[3]!.ack).to.equal(1); // the other direction keeps its base until a new SYN-ACK
  });

  it('--absolute-seq keeps the numbers on the wire', () => {
    expect(seqNumbers([syn, synAck], true).map((x) => [x.seq, x.ack])).to.deep.equal([[1000, 0], [5000, 1001]]);
  });

  it('wraps around 2^32 as sequence space arithmetic does', () => {
    const s = pkt({ seq: 0xfffffff0, flags: TCP.SYN });
    expect(seqNumbers([s, pkt({ seq: 0x10, ack: 0 })])[1]!.seq).to.equal(0x20);
  });
});

describe('report.html pieces', () => {
  it('escapes every text it puts into the page', () => {
    expect(esc(`<script>"x" & 'y'`)).to.equal('&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;');
    expect(prose('a `<b>` c\n\nnext')).to.equal('<p>a <code>&lt;b&gt;</code> c</p>\n<p>next</p>');
  });

  it('labels a packet as Wireshark’s flow graph does', () => {
    expect(flagWords(TCP.RST | TCP.ACK)).to.equal('[RST, ACK]');
    expect(packetLabel(pkt({ sport: 7, dport: 42, flags: TCP.RST | TCP.ACK, window: 0 }), { seq: 1, ack: 1, win: 0 })).to.equal('7 → 42 [RST, ACK] Seq=1 Ack=1 Win=0 Len=0');
    expect(packetLabel(pkt({ flags: TCP.RST }), { seq: 5, ack: 9, win: 0 })).to.not.contain('Ack=');
  });
});

describe('teaching notes of every scenario (rstlab explain, rstlab list)', () => {
  it('every scenario has them, every one of the nine common causes is covered, and `resembles` names real scenarios', async () => {
    const all = await listScenarios(`${root}scenarios`);
    const names = all.map((s) => s.scenario.name);
    for (const s of all) {
      expect(s.scenario.teach, `${s.scenario.name}: teach`).to.not.equal(undefined);
      for (const r of s.scenario.teach!.resembles) expect(names, `${s.scenario.name} resembles ${r.scenario}`).to.include(r.scenario);
      expect(s.scenario.teach!.wireshark.filters.map((f) => f.filter)).to.include('tcp.flags.reset == 1');
    }
    for (const c of COMMON_CAUSES) {
      expect(all.some((s) => s.scenario.teach?.causes.includes(c.id)), `cause ${c.id} covered`).to.equal(true);
    }
  });
});
