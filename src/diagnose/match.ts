// Which cause fits a RST: the signatures are the rst expectations of every scenario's cause
// variant (scenarios/*.yaml), matched field by field with the verifier's own checkShape
// (verify/signatures.ts); the sender (endpoint or in-between, initiator or acceptor) comes
// from `from`/`posingAs`. Where the shape alone cannot tell causes apart, what came before
// on the flow ranks them (idle time, probes, a challenge ACK, FINs, unread data, a new MAC).
import { planFor } from '../scenario/plan.js';
import type { LoadedScenario } from '../scenario/load.js';
import type { RstExpectation } from '../scenario/schema.js';
import { checkShape, type ShapeCheck } from '../verify/signatures.js';
import type { RstFacts, SentBy } from './facts.js';

export interface Signature {
  cause: string;
  summary: string;
  expectation: RstExpectation;
  /** endpoint: an end of the connection made it; in-between: a device forging the end's address */
  sentBy: Exclude<SentBy, 'unknown'>;
  role: 'initiator' | 'acceptor';
}

export interface Candidate {
  cause: string;
  confidence: number;
  /** why it fits (or what speaks against it) */
  because: string[];
}

/** The rst expectations of each scenario's cause variant, as signatures. */
export function signaturesOf(scenarios: LoadedScenario[]): Signature[] {
  const out: Signature[] = [];
  for (const s of scenarios) {
    // The cause's RST is the scenario's first rst expectation; a later one is a side effect
    // of how the lab makes it (half-open-restart's own RST from the killed socket, which dies
    // at the firewall), and repeats of the same RST (accept-queue-overflow's c4, c5) add nothing.
    const rsts = planFor(s, 'cause').expect.flatMap(({ expectation }) => ('rst' in expectation ? [expectation.rst] : []));
    for (const e of rsts.slice(0, 1)) {
      // The lab's client always connects, so its end is the initiator; a firewall (or an
      // impostor) poses as the end it names. Only a firewall is a device in between.
      const end = e.posingAs ?? e.from;
      out.push({ cause: s.scenario.name, summary: s.scenario.summary, expectation: e, sentBy: e.from === 'firewall' ? 'in-between' : 'endpoint', role: end === 'client' ? 'initiator' : 'acceptor' });
    }
  }
  return out;
}

/** Seconds of silence before a segment that make an idle timeout the likelier story (the lab's is 3 s, real ones are minutes). */
export const IDLE_SECONDS = 2;

/** Every cause whose signature the RST matches, best first, with a confidence each. */
export function candidatesFor(f: RstFacts, signatures: Signature[]): { candidates: Candidate[]; checks: Map<string, ShapeCheck[]> } {
  const scored = new Map<string, { score: number; because: string[] }>();
  const checks = new Map<string, ShapeCheck[]>();
  for (const sig of signatures) {
    const shape = checkShape(sig.expectation, f.rst, f.answered, f.view);
    if (!checks.has(sig.cause)) checks.set(sig.cause, shape);
    if (!shape.every((c) => c.ok)) continue;
    const because = [`its shape is this cause's: ${shape.map((c) => `${c.field} ${c.expected}`).join(', ')}`];
    let score = 1;
    if (f.senderRole !== 'unknown') {
      if (f.senderRole !== sig.role) continue; // the other end sent it: not this cause
      because.push(`sent by the ${sig.role}, as in this cause`);
      score += 0.5;
    }
    if (f.sentBy === sig.sentBy) {
      score += 1;
      because.push(`sent by ${f.sentBy === 'in-between' ? 'a device in between' : 'the endpoint'}, as in this cause`);
    } else if (f.sentBy !== 'unknown') {
      score -= 2;
      because.push(`but this cause's RST comes from ${sig.sentBy === 'in-between' ? 'a device in between' : 'the endpoint'}`);
    } else if (sig.sentBy === 'in-between' ? f.ttl.receiverHops === f.ttl.hops : f.ttl.receiverHops !== undefined && f.ttl.receiverHops !== f.ttl.hops) {
      score += 0.3; // the hop counts lean this way, without proving it
    }
    score += contextScore(sig.cause, f, because);
    // Another box than the one that spoke for the address before: only a duplicate address explains that.
    if (f.mac.changed === true && f.gratuitousArp && sig.cause !== 'duplicate-address') {
      score -= 1.5;
      because.push('but it came from another MAC than its source used before, after a gratuitous ARP');
    }
    const prev = scored.get(sig.cause);
    if (!prev || prev.score < score) scored.set(sig.cause, { score, because });
  }
  const list = [...scored.entries()].filter(([, v]) => v.score > 0).sort((a, b) => b[1].score - a[1].score);
  const total = list.reduce((n, [, v]) => n + v.score, 0);
  return {
    candidates: list.map(([cause, v]) => ({ cause, confidence: Math.round((v.score / total) * 100) / 100, because: v.because })),
    checks,
  };
}

/** What came before on the flow, for each cause whose shape other causes share. */
function contextScore(cause: string, f: RstFacts, because: string[]): number {
  const s = f.state;
  const say = (points: number, text: string): number => {
    because.push(text);
    return points;
  };
  const idle = s.idleBeforeAnswered;
  switch (cause) {
    case 'keepalive-timeout':
      if (s.keepaliveProbes >= 2) return say(3, `${s.keepaliveProbes} keepalive probes from the sender just before it, unanswered`);
      // Where the path dropped the probes, a capture past the drop sees only silence, then the RST.
      if (s.idleBeforeRst !== undefined && s.idleBeforeRst >= IDLE_SECONDS) return say(0.5, `no probes seen here, but the flow was silent ${s.idleBeforeRst.toFixed(1)} s before it: probes may have been lost before this point`);
      return say(-3, 'no keepalive probes before it');
    case 'app-abort':
    case 'unread-data-close': {
      if (s.keepaliveProbes >= 2) return say(-2, 'keepalive probes came before it');
      const unread = s.unreadBytes > 0;
      if (cause === 'unread-data-close') return unread ? say(1, `${s.unreadBytes} bytes from the peer came after the sender's last data and were never answered: probably unread`) : say(-0.5, 'no data from the peer was left unanswered');
      return unread ? say(0, 'the peer had sent data that was never answered: a close with unread data looks the same') : say(1, 'no data from the peer was left unanswered');
    }
    case 'syn-conflict':
      return s.challengeAck ? say(3, 'it answers a challenge ACK: the peer still held a connection on this 4-tuple') : say(-3, 'it does not answer a challenge ACK');
    case 'time-wait-assassination':
      return s.finFromSender && s.finFromReceiver ? say(2, 'both ends had sent FIN before: the receiver was in TIME-WAIT') : say(-3, 'the connection had not been closed by both ends');
    case 'accept-queue-overflow':
      return s.acceptorData === 0 && !s.finFromSender ? say(1, 'the acceptor had sent nothing since its SYN-ACK: the connection never left the accept queue') : say(-2, 'the acceptor had already sent data');
    case 'half-open-restart':
      return s.acceptorData > 0 ? say(1, 'the connection had carried data both ways before: the sender lost it since') : say(0, 'nothing came from the acceptor since its SYN-ACK');
    case 'idle-timeout':
      return idle !== undefined && idle >= IDLE_SECONDS ? say(1.5, `the flow was idle ${idle.toFixed(1)} s before the segment it answers`) : say(-0.5, `the flow was not idle before it (${idle?.toFixed(2) ?? '?'} s)`);
    case 'firewall-invalid-state':
      return idle !== undefined && idle >= IDLE_SECONDS ? say(0, `the flow was idle ${idle.toFixed(1)} s: a state table entry may have expired`) : say(0.5, 'the flow was busy: the state table did not know it');
    case 'duplicate-address':
      if (f.mac.changed === true) return say(f.gratuitousArp ? 4 : 3, `its source MAC ${f.mac.rst} differs from every earlier packet of ${f.rst.src} (${f.mac.earlier.join(', ')})${f.gratuitousArp ? `, and a gratuitous ARP for ${f.rst.src} from ${f.gratuitousArp.senderMac} came before it` : ''}`);
      // Past a router every frame carries the router's MAC: only a capture on the sender's own network can compare.
      if (f.mac.changed === false && f.ttl.hops === 0) return say(-3, 'its source MAC is the one the sender used before');
      return say(-0.5, 'no MAC of the sender to compare (no Ethernet headers, or a router in between rewrites them): capture on the server\'s network to tell');
    default:
      return 0;
  }
}

/** What to check on the real systems, per cause (the troubleshooting that fits it). */
export const NEXT_CHECKS: Record<string, string> = {
  'closed-port': 'Is the service running and listening on that port and address (ss -ltn on the server)? Check the client\'s target address and port, and whether a firewall is configured to reject instead (compare TTLs with a capture on the server).',
  'firewall-reject': 'Look for REJECT --reject-with tcp-reset rules (iptables -S / nft list ruleset) on firewalls and hosts between; capture on the server: a firewall RST never reaches it.',
  'syn-conflict': 'The client reused a local port the server still holds: check the client\'s port allocation (fixed source ports, NAT port reuse) and the server\'s stale ESTABLISHED connections (ss -tn); look at keepalive on the server.',
  'accept-queue-overflow': 'The server\'s accept queue overflowed: check nstat ListenOverflows, net.ipv4.tcp_abort_on_overflow, the listen backlog and somaxconn, and whether the application accepts fast enough (server load, blocked event loop).',
  'half-open-restart': 'The server lost the connection (restart, crash, failover) while the client kept it: check the server application\'s logs and uptime around that time; enable keepalive or shorten client idle reuse.',
  'firewall-invalid-state': 'A stateful firewall did not know the connection: check conntrack tables (conntrack -L), rules on INVALID state, asymmetric routing, state sync between firewall pairs, and nf_conntrack_tcp_loose.',
  'time-wait-assassination': 'A segment for an old connection hit a TIME-WAIT socket: check net.ipv4.tcp_rfc1337, delayed duplicates or forged segments, and whether ports are reused quickly.',
  'app-abort': 'The application aborted the connection (SO_LINGER 0, resetAndDestroy, abortive close): check the application\'s logs and its error handling around that time.',
  'idle-timeout': 'The flow was idle longer than a device\'s state timeout: check firewall/NAT/load balancer idle timeouts and enable TCP keepalive (or application pings) shorter than them.',
  'keepalive-timeout': 'Keepalive probes went unanswered: the peer or the path is gone. Check the path (firewall drops), the peer host, and the keepalive settings (tcp_keepalive_time/intvl/probes).',
  'unread-data-close': 'The application closed with data still unread in its receive buffer (RFC 2525 §2.17): check the application reads all the request before closing, and its logs.',
  'duplicate-address': 'Two hosts claim the same IP address: look for duplicate addresses (arping -D, switch MAC tables, the router\'s ARP/neighbour table history, DHCP leases), and for gratuitous ARP from an unexpected MAC.',
};
