// The verifier on synthetic captures: five flows whose RSTs have the signatures of
// RST-CAUSES.md (closed port, firewall REJECT, full accept queue, SYN conflict, abort of a
// live socket). Every rule and every field of a rst expectation is shown to pass and to
// say no, with the field, the expected and the seen value in the detail.
import { expect as chaiExpect } from 'chai';
import { Expectation } from '../../src/scenario/schema.js';
import { formatPacket, formatTime } from '../../src/verify/format.js';
import type { Result } from '../../src/verify/judge.js';
import { rstSightings, type RstSighting } from '../../src/verify/sightings.js';
import { verify, type Verdict } from '../../src/verify/verify.js';
import { TCP, type CapturePoint, type KernelReset, type Observations, type TcpPacket } from '../../src/vocabulary.js';

const CLIENT = '10.0.1.2';
const SERVER = '10.0.2.2';
const ALL: CapturePoint[] = ['client', 'firewall-a', 'firewall-b', 'server'];
const T0 = 1_700_000_000;

type Sender = 'client' | 'server' | 'firewall';

interface Segment {
  from: Sender;
  /** the IP source; defaults to the sender's address */
  src?: string;
  dst?: string;
  sport: number;
  dport: number;
  flags: string;
  seq: number;
  ack?: number;
  len?: number;
  /** the points that see it; defaults to the whole path */
  at?: CapturePoint[];
}

const FLAG_BITS: Record<string, number> = { S: TCP.SYN, F: TCP.FIN, P: TCP.PSH, R: TCP.RST, '.': TCP.ACK };

/** A small capture builder: each segment crosses its path, losing one TTL at the firewall. */
class Capture {
  readonly packets: Record<CapturePoint, TcpPacket[]> = { client: [], 'firewall-a': [], 'firewall-b': [], server: [] };
  private t = T0;

  send(s: Segment): void {
    this.t += 0.001;
    const toClient = s.from === 'server' || (s.from === 'firewall' && (s.dst ?? CLIENT) === CLIENT);
    const path: CapturePoint[] = toClient ? ['server', 'firewall-b', 'firewall-a', 'client'] : ['client', 'firewall-a', 'firewall-b', 'server'];
    const at = s.at ?? path;
    let flags = 0;
    for (const ch of s.flags) flags |= FLAG_BITS[ch] ?? 0;
    path.forEach((point, hop) => {
      if (!at.includes(point)) return;
      // Forwarded by the firewall between the 2nd and 3rd point of the path; the
      // firewall's own segments start with a full TTL.
      const ttl = s.from !== 'firewall' && hop >= 2 ? 63 : 64;
      this.packets[point].push({
        time: this.t + hop * 0.00001,
        ipVersion: 4,
        src: s.src ?? (s.from === 'client' ? CLIENT : SERVER),
        dst: s.dst ?? (toClient ? CLIENT : SERVER),
        ttl,
        ipId: flags & TCP.RST ? 0 : 1234,
        sport: s.sport,
        dport: s.dport,
        seq: s.seq,
        ack: s.ack ?? 0,
        flags,
        window: flags & TCP.RST ? 0 : 64240,
        payloadLength: s.len ?? 0,
        options: {},
      });
    });
  }

  now(): number {
    return this.t;
  }
}

interface Lab {
  obs: Observations;
  cap: Capture;
}

/** All five flows in one run. */
function lab(): Lab {
  const cap = new Capture();
  const resets: KernelReset[] = [];
  const c = 'client' as const;
  const s = 'server' as const;

  // 1. Closed port: SYN to :7, the server answers R. seq 0, ack = SYN seq + 1.
  cap.send({ from: c, sport: 40000, dport: 7, flags: 'S', seq: 1000 });
  cap.send({ from: s, sport: 7, dport: 40000, flags: 'R.', seq: 0, ack: 1001 });
  resets.push({ time: cap.now(), saddr: SERVER, sport: 7, daddr: CLIENT, dport: 40000, state: 'TCP_CLOSE', reason: 'NO_SOCKET' });

  // 2. Firewall REJECT on :23: the SYN dies in the firewall, which answers as the server.
  cap.send({ from: c, sport: 40001, dport: 23, flags: 'S', seq: 2000, at: ['client', 'firewall-a'] });
  cap.send({ from: 'firewall', src: SERVER, dst: CLIENT, sport: 23, dport: 40001, flags: 'R.', seq: 0, ack: 2001, at: ['firewall-a', 'client'] });

  // 3. Full accept queue: the client's ACK is held back, its first byte meets a full queue.
  cap.send({ from: c, sport: 40002, dport: 8080, flags: 'S', seq: 3000 });
  cap.send({ from: s, sport: 8080, dport: 40002, flags: 'S.', seq: 9000, ack: 3001 });
  cap.send({ from: c, sport: 40002, dport: 8080, flags: '.', seq: 3001, ack: 9001, at: ['client', 'firewall-a'] });
  cap.send({ from: c, sport: 40002, dport: 8080, flags: 'P.', seq: 3001, ack: 9001, len: 1 });
  cap.send({ from: s, sport: 8080, dport: 40002, flags: 'R', seq: 9001 });
  // The tracepoint shows the listener's address, not the flow's.
  resets.push({ time: cap.now(), saddr: SERVER, sport: 8080, daddr: '0.0.0.0', dport: 0, state: 'TCP_LISTEN', reason: 'INVALID_SYN' });

  // 4. SYN conflict: the server still holds an old connection on this 4-tuple.
  cap.send({ from: c, sport: 40003, dport: 9000, flags: 'S', seq: 3990 });
  cap.send({ from: s, sport: 9000, dport: 40003, flags: 'S.', seq: 6990, ack: 3991 });
  cap.send({ from: c, sport: 40003, dport: 9000, flags: '.', seq: 3991, ack: 6991 });
  cap.send({ from: c, sport: 40003, dport: 9000, flags: 'S', seq: 5000 });
  cap.send({ from: s, sport: 9000, dport: 40003, flags: '.', seq: 6991, ack: 3991 }); // challenge ACK
  cap.send({ from: c, sport: 40003, dport: 9000, flags: 'R', seq: 3991 });
  resets.push({ time: cap.now(), saddr: CLIENT, sport: 40003, daddr: SERVER, dport: 9000, state: 'TCP_SYN_SENT', reason: 'TCP_INVALID_ACK_SEQUENCE' });

  // 5. Abort of a live socket: R. seq = snd_nxt, ack = rcv_nxt.
  cap.send({ from: c, sport: 40004, dport: 9001, flags: 'S', seq: 100 });
  cap.send({ from: s, sport: 9001, dport: 40004, flags: 'S.', seq: 500, ack: 101 });
  cap.send({ from: c, sport: 40004, dport: 9001, flags: '.', seq: 101, ack: 501 });
  cap.send({ from: c, sport: 40004, dport: 9001, flags: 'P.', seq: 101, ack: 501, len: 10 });
  cap.send({ from: s, sport: 9001, dport: 40004, flags: '.', seq: 501, ack: 111 });
  cap.send({ from: s, sport: 9001, dport: 40004, flags: 'P.', seq: 501, ack: 111, len: 20 });
  cap.send({ from: s, sport: 9001, dport: 40004, flags: 'R.', seq: 521, ack: 111 });
  resets.push({ time: cap.now(), saddr: SERVER, sport: 9001, daddr: CLIENT, dport: 40004, state: 'TCP_CLOSE', reason: 'TCP_ABORT_ON_CLOSE' });

  const ev = (event: 'connected' | 'accepted' | 'end' | 'closed' | 'error', code?: string) => ({ t: 1, event, code });
  const obs: Observations = {
    packets: cap.packets,
    conns: {
      closed: { id: 'closed', initiator: { host: 'client', localPort: 40000, remotePort: 7, events: [ev('error', 'ECONNREFUSED'), ev('closed')] } },
      reject: { id: 'reject', initiator: { host: 'client', localPort: 40001, remotePort: 23, events: [ev('error', 'ECONNREFUSED')] } },
      queued: {
        id: 'queued',
        initiator: { host: 'client', localPort: 40002, remotePort: 8080, events: [ev('connected'), ev('error', 'ECONNRESET')] },
      },
      old: {
        id: 'old',
        initiator: { host: 'client', localPort: 40003, remotePort: 9000, events: [ev('connected')] },
        acceptor: { host: 'server', localPort: 9000, remotePort: 40003, events: [ev('accepted'), ev('error', 'ECONNRESET')] },
      },
      quiet: { id: 'quiet', initiator: { host: 'client', localPort: 40005, remotePort: 9002, events: [ev('connected')] } },
      fresh: { id: 'fresh', initiator: { host: 'client', localPort: 40003, remotePort: 9000, events: [ev('connected')] } },
      live: {
        id: 'live',
        initiator: { host: 'client', localPort: 40004, remotePort: 9001, events: [ev('connected'), ev('error', 'ECONNRESET')] },
        acceptor: { host: 'server', localPort: 9001, remotePort: 40004, events: [ev('accepted'), ev('closed')] },
      },
    },
    counters: {
      server: { before: { TcpOutRsts: 10, TcpExtListenOverflows: 0 }, after: { TcpOutRsts: 13, TcpExtListenOverflows: 2 } },
      client: { before: {}, after: { TcpAttemptFails: 1 } },
    },
    snapshots: {
      client: {
        after: [
          { state: 'TIME-WAIT', local: CLIENT, localPort: 40004, remote: SERVER, remotePort: 9001 },
          { state: 'ESTABLISHED', local: CLIENT, localPort: 40003, remote: SERVER, remotePort: 9000 },
          { state: 'TIME_WAIT', local: CLIENT, localPort: 40010, remote: SERVER, remotePort: 9999 },
        ],
      },
    },
    kernelResets: resets,
  };
  return { obs, cap };
}

/** An expectation as a scenario file would give it (validated, defaults filled in). */
function x(e: unknown): Expectation {
  return Expectation.parse(e);
}

function run(es: unknown[], obs: Observations = lab().obs, capture: CapturePoint[] = ALL): Verdict {
  return verify(es.map((e, i) => ({ expectation: x(e), line: 10 + i })), obs, { capture });
}

/** The result of the first (only) expectation. */
function one(e: unknown, obs?: Observations, capture?: CapturePoint[]): Result {
  const r = run([e], obs, capture).results[0];
  if (!r) throw new Error('no result');
  return r;
}

function failsWith(r: Result, ...fragments: string[]): void {
  chaiExpect(r.passed, `expected a failure: ${r.summary}`).to.equal(false);
  for (const f of fragments) chaiExpect(r.detail ?? '').to.include(f);
}

function passes(r: Result): void {
  chaiExpect(r.passed, `${r.summary}\n${r.detail ?? ''}`).to.equal(true);
}

const closedPort = { from: 'server', to: 'client', conn: 'closed' } as const;
const rejected = { from: 'firewall', posingAs: 'server', to: 'client', conn: 'reject' } as const;
const queueFull = { from: 'server', to: 'client', conn: 'queued' } as const;
const synConflict = { from: 'client', to: 'server', conn: 'fresh' } as const;
const aborted = { from: 'server', to: 'client', conn: 'live' } as const;

describe('verify', () => {
  describe('RST sightings', () => {
    let rsts: RstSighting[];
    before(() => {
      rsts = rstSightings(lab().obs, { capture: ALL });
    });

    it('merges one RST across capture points, with the TTL at each', () => {
      chaiExpect(rsts).to.have.length(5);
      const s = rsts.find((r) => r.conn === 'closed');
      chaiExpect(s?.seenAt).to.deep.equal(['server', 'firewall-b', 'firewall-a', 'client']);
      chaiExpect(s?.seen.server?.ttl).to.equal(64);
      chaiExpect(s?.seen.client?.ttl).to.equal(63);
      chaiExpect(s?.from).to.equal('server');
      chaiExpect(s?.point).to.equal('server');
      chaiExpect(s?.reason).to.equal('NO_SOCKET');
      chaiExpect(s?.answered?.packet.flags).to.equal(TCP.SYN);
    });

    it('credits a RST first seen at firewall-a to the firewall, whatever its IP source', () => {
      const s = rsts.find((r) => r.conn === 'reject');
      chaiExpect(s?.from).to.equal('firewall');
      chaiExpect(s?.ipSource).to.equal('server');
      chaiExpect(s?.point).to.equal('firewall-a');
      chaiExpect(s?.reason, 'REJECTs never fire tcp:tcp_send_reset').to.equal(undefined);
    });

    it('matches kernel reasons on a listener address (wildcards) and on exact 4-tuples', () => {
      chaiExpect(rsts.find((r) => r.conn === 'queued')?.reason).to.equal('INVALID_SYN');
      chaiExpect(rsts.find((r) => r.conns.includes('fresh'))?.reason).to.equal('TCP_INVALID_ACK_SEQUENCE');
      chaiExpect(rsts.find((r) => r.conn === 'live')?.reason).to.equal('TCP_ABORT_ON_CLOSE');
    });

    it('lists every connection that shares the ports of a RST', () => {
      chaiExpect(rsts.find((r) => r.sport === 40003)?.conns).to.deep.equal(['old', 'fresh']);
    });

    it('keeps two identical RSTs far apart in time as two sightings', () => {
      const cap = new Capture();
      for (let i = 0; i < 2; i++) {
        cap.send({ from: 'client', sport: 40000, dport: 7, flags: 'S', seq: 1000 });
        cap.send({ from: 'server', sport: 7, dport: 40000, flags: 'R.', seq: 0, ack: 1001 });
        (cap as unknown as { t: number }).t += 1;
      }
      const found = rstSightings({ packets: cap.packets, conns: {}, counters: {}, snapshots: {} }, { capture: ALL });
      chaiExpect(found).to.have.length(2);
      chaiExpect(found.map((s) => s.seenAt.length)).to.deep.equal([4, 4]);
    });

    it('judges the sender from the TTL where the points before were not captured', () => {
      const { obs } = lab();
      obs.packets = { client: obs.packets.client };
      const found = rstSightings(obs, { capture: ['client'] });
      chaiExpect(found.find((s) => s.sport === 7)?.from).to.equal('server');
      chaiExpect(found.find((s) => s.sport === 7)?.fromBy).to.equal('ttl');
      chaiExpect(found.find((s) => s.sport === 23)?.from).to.equal('firewall');
    });
  });

  describe('rst', () => {
    it('closed port: R. from the server, seq 0, ack = SYN seq + 1, TTL 63 at client, NO_SOCKET', () => {
      passes(
        one({
          rst: {
            ...closedPort,
            flags: 'R.',
            seq: 0,
            ack: 'syn.seq + 1',
            answers: 'SYN',
            seenAt: ['server', 'client'],
            ttlAt: { client: 63, server: 64 },
            reason: 'NO_SOCKET',
          },
        }),
      );
    });

    it('firewall REJECT: from firewall posing as server, only at firewall-a and client, TTL 64', () => {
      passes(
        one({
          rst: {
            ...rejected,
            flags: 'R.',
            seq: 0,
            ack: 'answered.seq+1',
            answers: 'SYN',
            seenAt: ['firewall-a', 'client'],
            notSeenAt: ['firewall-b', 'server'],
            ttlAt: { client: 64, 'firewall-a': 64 },
          },
        }),
      );
    });

    it('full accept queue: R from the server, seq = synack.seq + 1, answering data', () => {
      passes(one({ rst: { ...queueFull, flags: 'R', seq: 'synack.seq+1', answers: 'data', reason: 'INVALID_SYN', ttlAt: { client: 63 } } }));
    });

    it('SYN conflict: R from the client, seq = the challenge ACK\'s ack, answering an ACK', () => {
      passes(
        one({
          rst: { ...synConflict, flags: 'R', seq: 'answered.ack', answers: 'ACK', ttlAt: { client: 64, server: 63 }, reason: 'TCP_INVALID_ACK_SEQUENCE' },
        }),
      );
      passes(one({ rst: { from: 'client', to: 'server', conn: 'old' } }));
    });

    it('live socket: R. with seq = snd_nxt and ack = rcv_nxt, answering data', () => {
      passes(one({ rst: { ...aborted, flags: 'R.', seq: 'snd_nxt', ack: 'rcv_nxt', answers: 'data', reason: 'TCP_ABORT_ON_CLOSE' } }));
    });

    it('says no to the wrong sender, and names both', () => {
      const r = one({ rst: { from: 'server', to: 'client', conn: 'reject' } });
      failsWith(r, 'from: expected server, seen firewall (first seen at firewall-a)', '✓ conn: expected reject');
      chaiExpect(r.line).to.equal(10);
    });

    it('says no when a forged RST does not say whom it poses as', () => {
      failsWith(one({ rst: { from: 'firewall', to: 'client', conn: 'reject' } }), 'source: expected 10.0.1.1 or 10.0.2.1', 'seen 10.0.2.2 (server)');
    });

    it('says no to posingAs when the sender uses its own address', () => {
      failsWith(one({ rst: { ...closedPort, posingAs: 'client' } }), 'posingAs: expected 10.0.1.2 (client)', 'seen 10.0.2.2 (server)');
    });

    it('says no to the wrong receiver', () => {
      failsWith(one({ rst: { from: 'server', to: 'server', conn: 'closed' } }), 'to: expected server, seen 10.0.1.2 (client)');
    });

    it('says no to the wrong connection', () => {
      failsWith(one({ rst: { from: 'server', to: 'client', conn: 'closed', seq: 'snd_nxt' } }), 'seq: expected snd_nxt');
      const r = one({ rst: { ...rejected, conn: 'quiet' } });
      failsWith(r, '✗ conn: expected quiet (ports 40005 <> 9002), seen ports 23 > 40001 (reject)');
      failsWith(one({ rst: { from: 'server', to: 'client', conn: 'nosuch' } }), 'conn: expected nosuch (its ports are unknown');
    });

    it('says no to the wrong flags', () => {
      failsWith(one({ rst: { ...closedPort, flags: 'R' } }), 'flags: expected R, seen R.');
      failsWith(one({ rst: { ...queueFull, flags: 'R.' } }), 'flags: expected R., seen R');
    });

    it('says no to a wrong seq or ack relation, with the value it stands for', () => {
      failsWith(one({ rst: { ...queueFull, seq: 'synack.seq' } }), 'seq: expected synack.seq = 9000, seen 9001');
      failsWith(one({ rst: { ...closedPort, ack: 'syn.seq' } }), 'ack: expected syn.seq = 1000, seen 1001');
      failsWith(one({ rst: { ...closedPort, seq: 5 } }), 'seq: expected 5, seen 0');
      failsWith(one({ rst: { ...aborted, seq: 'rcv_nxt' } }), 'seq: expected rcv_nxt = 111, seen 521');
      failsWith(one({ rst: { ...aborted, ack: 'snd_nxt' } }), 'ack: expected snd_nxt = 521, seen 111');
      failsWith(one({ rst: { ...synConflict, seq: 'answered.seq' } }), 'seq: expected answered.seq = 6991, seen 3991');
    });

    it('says why a relation cannot be resolved', () => {
      failsWith(one({ rst: { ...rejected, seq: 'synack.seq' } }), 'no SYN-ACK on the flow before it at firewall-a');
      failsWith(one({ rst: { ...rejected, seq: 'snd_nxt' } }), 'nothing from 10.0.2.2');
    });

    it('takes the latest SYN of a reused 4-tuple for syn.*', () => {
      passes(one({ rst: { ...synConflict, seq: 'syn.seq - 1009' } }));
      failsWith(one({ rst: { ...synConflict, seq: 'syn.seq + 1' } }), 'seq: expected syn.seq + 1 = 5001');
    });

    it('does sequence arithmetic modulo 2^32', () => {
      const cap = new Capture();
      cap.send({ from: 'client', sport: 40000, dport: 80, flags: 'S', seq: 0xfffffff0 });
      cap.send({ from: 'server', sport: 80, dport: 40000, flags: 'S.', seq: 0xffffffff, ack: 0xfffffff1 });
      cap.send({ from: 'client', sport: 40000, dport: 80, flags: 'P.', seq: 0xfffffff1, ack: 0, len: 32 });
      cap.send({ from: 'server', sport: 80, dport: 40000, flags: 'R.', seq: 0, ack: 0x11 });
      const obs: Observations = {
        packets: cap.packets,
        conns: { w: { id: 'w', initiator: { host: 'client', localPort: 40000, remotePort: 80, events: [] } } },
        counters: {},
        snapshots: {},
      };
      passes(one({ rst: { from: 'server', to: 'client', conn: 'w', seq: 'snd_nxt', ack: 'rcv_nxt' } }, obs));
      passes(one({ rst: { from: 'server', to: 'client', conn: 'w', seq: 'synack.seq+1', ack: 'answered.seq + 32' } }, obs));
      failsWith(one({ rst: { from: 'server', to: 'client', conn: 'w', seq: 'synack.seq-1' } }, obs), `synack.seq-1 = ${0xfffffffe}`);
    });

    it('says no to the wrong kind of answered segment', () => {
      failsWith(one({ rst: { ...closedPort, answers: 'data' } }), 'answers: expected data, seen SYN');
      failsWith(one({ rst: { ...synConflict, answers: 'SYN' } }), 'answers: expected SYN, seen ACK');
    });

    it('says no when missing at a seenAt point', () => {
      failsWith(one({ rst: { ...rejected, seenAt: ['client', 'server'] } }), 'seenAt: expected client, server, seen firewall-a, client');
    });

    it('says no when present at a notSeenAt point', () => {
      failsWith(one({ rst: { ...closedPort, notSeenAt: ['server'] } }), 'notSeenAt: expected none of server, seen server, firewall-b, firewall-a, client');
    });

    it('says no to absence at a point that was not captured', () => {
      const r = one({ rst: { ...rejected, notSeenAt: ['server'] } }, lab().obs, ['client', 'firewall-a', 'firewall-b']);
      failsWith(r, 'absence unproven: server');
    });

    it('says no to the wrong TTL', () => {
      failsWith(one({ rst: { ...closedPort, ttlAt: { client: 64 } } }), 'ttlAt.client: expected 64, seen 63');
      failsWith(one({ rst: { ...rejected, ttlAt: { server: 64 } } }), 'ttlAt.server: expected 64, seen not seen at server');
    });

    it('says no to the wrong kernel reason, or to one that was never recorded', () => {
      failsWith(one({ rst: { ...closedPort, reason: 'TCP_STATE' } }), 'reason: expected TCP_STATE, seen NO_SOCKET');
      failsWith(one({ rst: { ...rejected, reason: 'NO_SOCKET' } }), 'reason: expected NO_SOCKET, seen none (no tcp:tcp_send_reset event');
      const { obs } = lab();
      delete obs.kernelResets;
      failsWith(one({ rst: { ...closedPort, reason: 'NO_SOCKET' } }, obs), 'tracefs unavailable');
    });

    it('counts: exactly count sightings must match', () => {
      passes(one({ rst: { from: 'server', to: 'client', flags: 'R.', seq: 0, count: 1 } }));
      const r = one({ rst: { from: 'server', to: 'client', count: 2 } });
      failsWith(r, 'expected 2 matching RSTs, saw 3', 'matching:');
      passes(one({ rst: { from: 'server', to: 'client', count: 3 } }));
      failsWith(one({ rst: { from: 'client', to: 'server', count: 2 } }), 'expected 2 matching RSTs, saw 1');
    });

    it('says "at all" when there is no RST from the sender to the receiver, and when there is none', () => {
      failsWith(one({ rst: { from: 'firewall', to: 'server' } }), 'no RST from firewall to server at all', 'closest: RST #');
      const cap = new Capture();
      cap.send({ from: 'client', sport: 40000, dport: 7, flags: 'S', seq: 1 });
      const obs: Observations = {
        packets: cap.packets,
        conns: { c: { id: 'c', initiator: { host: 'client', localPort: 40000, remotePort: 7, events: [] } } },
        counters: {},
        snapshots: {},
      };
      const r = one({ rst: { from: 'server', to: 'client', conn: 'c' } }, obs);
      failsWith(r, 'no RST at any capture point at all');
      chaiExpect(r.context?.map((p) => p.packet.seq)).to.deep.equal([1]);
    });

    it('gives the packets of the closest candidate\'s flow as context', () => {
      const r = one({ rst: { ...queueFull, seq: 'synack.seq' } });
      const flags = r.context?.map((p) => p.packet.flags);
      chaiExpect(flags).to.include(TCP.RST);
      chaiExpect(r.context?.every((p) => p.packet.sport === 40002 || p.packet.dport === 40002)).to.equal(true);
      chaiExpect(r.context?.every((p) => p.point === 'server')).to.equal(true);
    });
  });

  describe('exactness', () => {
    const all = [
      { rst: closedPort },
      { rst: rejected },
      { rst: queueFull },
      { rst: synConflict },
      { rst: aborted },
    ];

    it('passes when every RST is expected', () => {
      const v = run(all);
      chaiExpect(v.passed, v.results.map((r) => r.detail).join('\n')).to.equal(true);
      chaiExpect(v.rsts).to.have.length(5);
    });

    it('fails on each RST no expectation claimed', () => {
      const v = run(all.slice(0, 3));
      chaiExpect(v.passed).to.equal(false);
      const extra = v.results.filter((r) => r.kind === 'unexpected-rst');
      chaiExpect(extra).to.have.length(2);
      chaiExpect(extra.every((r) => r.line === 0 && !r.passed)).to.equal(true);
      chaiExpect(extra[0]?.detail).to.include('unexpected RST').and.include('40003');
      chaiExpect(extra[1]?.detail).to.include('40004');
      chaiExpect(extra[0]?.context?.length).to.be.greaterThan(1);
    });

    it('a count of 3 claims three sightings; two expectations of one RST leave the others unexplained', () => {
      const three = run([{ rst: { from: 'server', to: 'client', count: 3 } }, { rst: rejected }, { rst: synConflict }]);
      chaiExpect(three.passed).to.equal(true);
      const twice = run([{ rst: closedPort }, { rst: { from: 'server', to: 'client', conn: 'closed' } }, { rst: rejected }, { rst: synConflict }]);
      chaiExpect(twice.results.filter((r) => r.kind === 'unexpected-rst')).to.have.length(2);
    });
  });

  describe('noRst', () => {
    it('passes without any RST', () => {
      const cap = new Capture();
      cap.send({ from: 'client', sport: 40000, dport: 7, flags: 'S', seq: 1 });
      cap.send({ from: 'server', sport: 7, dport: 40000, flags: 'S.', seq: 9, ack: 2 });
      const v = run([{ noRst: {} }], { packets: cap.packets, conns: {}, counters: {}, snapshots: {} });
      chaiExpect(v.passed).to.equal(true);
      chaiExpect(v.results).to.have.length(1);
    });

    it('fails with a list of every RST, and does not report them twice', () => {
      const v = run([{ noRst: {} }]);
      chaiExpect(v.results).to.have.length(1);
      failsWith(v.results[0] as Result, 'expected no RST, saw 5', 'RST #1 R. from server to client on closed', 'RST #2 R. from firewall (IP source 10.0.2.2 (server))');
      chaiExpect(v.results[0]?.context?.some((p) => p.packet.flags & TCP.RST)).to.equal(true);
    });
  });

  describe('app', () => {
    it('saw an error code or an event', () => {
      passes(one({ app: { host: 'client', conn: 'closed', saw: 'ECONNREFUSED' } }));
      passes(one({ app: { host: 'server', conn: 'old', saw: 'ECONNRESET' } }));
      passes(one({ app: { host: 'server', conn: 'live', saw: 'accepted', notSaw: 'ECONNRESET' } }));
    });

    it('says no when the end did not see it, listing what it saw', () => {
      failsWith(one({ app: { host: 'client', conn: 'closed', saw: 'ECONNRESET' } }), 'saw: expected ECONNRESET', 'ECONNREFUSED, closed');
      failsWith(one({ app: { host: 'server', conn: 'closed', saw: 'accepted' } }), 'never existed');
      failsWith(one({ app: { host: 'client', conn: 'nosuch', saw: 'connected' } }), 'no connection nosuch');
    });

    it('notSaw passes when absent and says no when present', () => {
      passes(one({ app: { host: 'client', conn: 'queued', notSaw: 'ECONNREFUSED' } }));
      passes(one({ app: { host: 'server', conn: 'closed', notSaw: 'accepted' } }));
      failsWith(one({ app: { host: 'client', conn: 'queued', notSaw: 'ECONNRESET' } }), 'notSaw: expected no ECONNRESET', 'connected, ECONNRESET');
    });
  });

  describe('counter', () => {
    it('delta passes when exact and says no otherwise, with before and after', () => {
      passes(one({ counter: { host: 'server', name: 'TcpOutRsts', delta: 3 } }));
      passes(one({ counter: { host: 'client', name: 'TcpAttemptFails', delta: 1 } }));
      failsWith(one({ counter: { host: 'server', name: 'TcpOutRsts', delta: 1 } }), 'delta: expected 1, seen 3 (before 10, after 13)');
    });

    it('min passes at or above and says no below', () => {
      passes(one({ counter: { host: 'server', name: 'TcpExtListenOverflows', min: 2 } }));
      failsWith(one({ counter: { host: 'server', name: 'TcpExtListenOverflows', min: 3 } }), 'min: expected at least 3, seen 2 (before 0, after 2)');
    });

    it('a missing counter is 0; a host without counters cannot pass', () => {
      passes(one({ counter: { host: 'server', name: 'TcpExtTCPAbortOnClose', delta: 0 } }));
      failsWith(one({ counter: { host: 'firewall', name: 'TcpOutRsts', min: 0 } }), 'no counters were recorded for firewall');
    });
  });

  describe('sockets', () => {
    it('counts entries in a state, also on one connection', () => {
      passes(one({ sockets: { host: 'client', snapshot: 'after', state: 'TIME-WAIT', count: 2 } }));
      passes(one({ sockets: { host: 'client', snapshot: 'after', state: 'TIME-WAIT', conn: 'live', count: 1 } }));
      passes(one({ sockets: { host: 'client', snapshot: 'after', state: 'TIME-WAIT', conn: 'closed', count: 0 } }));
    });

    it('says no to the wrong count, listing the entries', () => {
      const r = one({ sockets: { host: 'client', snapshot: 'after', state: 'TIME-WAIT', conn: 'live', count: 0 } });
      failsWith(r, 'count: expected 0 in TIME-WAIT, seen 1', 'TIME-WAIT 10.0.1.2:40004 10.0.2.2:9001');
      failsWith(one({ sockets: { host: 'client', snapshot: 'after', state: 'ESTABLISHED', count: 2 } }), 'seen 1', 'ESTABLISHED 10.0.1.2:40003');
      failsWith(one({ sockets: { host: 'server', snapshot: 'after', state: 'LISTEN', count: 1 } }), 'no snapshot after of server');
    });
  });

  describe('the verdict', () => {
    it('keeps the lines and passes only when every result passes', () => {
      const v = run([{ rst: closedPort }, { app: { host: 'client', conn: 'closed', saw: 'ECONNRESET' } }]);
      chaiExpect(v.results.slice(0, 2).map((r) => [r.line, r.kind, r.passed])).to.deep.equal([
        [10, 'rst', true],
        [11, 'app', false],
      ]);
      chaiExpect(v.passed).to.equal(false);
    });
  });
});

describe('formatPacket', () => {
  it('writes a packet the way tcpdump does, with the capture point in front', () => {
    const p: TcpPacket = {
      time: Date.UTC(2024, 0, 1, 12, 0, 0) / 1000 + 0.123456,
      ipVersion: 4,
      src: CLIENT,
      dst: SERVER,
      ttl: 64,
      ipId: 1,
      sport: 40000,
      dport: 7,
      seq: 1000,
      ack: 0,
      flags: TCP.SYN,
      window: 64240,
      payloadLength: 0,
      options: {},
    };
    chaiExpect(formatPacket(p)).to.equal('12:00:00.123456 10.0.1.2.40000 > 10.0.2.2.7: Flags [S], seq 1000, win 64240, length 0, ttl 64');
    chaiExpect(formatPacket({ ...p, flags: TCP.RST | TCP.ACK, ack: 1001 }, 'firewall-a')).to.equal(
      'firewall-a 12:00:00.123456 10.0.1.2.40000 > 10.0.2.2.7: Flags [R.], seq 1000, ack 1001, win 64240, length 0, ttl 64',
    );
    chaiExpect(formatTime(59.9999996)).to.equal('00:01:00.000000');
  });
});
