// A RST in words, the same in the terminal ladder, the HTML report and the packet
// comments of all.pcapng: who sent it (posing as whom) and the kernel's reason in plain
// words next to its own name, so a class can look the name up in the kernel's source.
import type { RstSighting } from '../verify/sightings.js';

/**
 * The reasons of the tcp:tcp_send_reset tracepoint (include/net/rstreason.h, Linux 6.10+),
 * in a few words each. A reason missing here is shown by its kernel name alone.
 */
const REASON_WORDS: Record<string, string> = {
  NOT_SPECIFIED: 'reason not specified',
  NO_SOCKET: 'no socket',
  TCP_INVALID_ACK_SEQUENCE: 'an unacceptable ACK in SYN-SENT (RFC 9293 §3.10.7.3)',
  TCP_RFC7323_PAWS: 'an old timestamp (PAWS, RFC 7323)',
  TCP_TOO_OLD_ACK: 'an ACK older than the window',
  TCP_ACK_UNSENT_DATA: 'an ACK of data never sent',
  TCP_FLAGS: 'a segment with flags that state does not take',
  TCP_OLD_ACK: 'an old ACK',
  TCP_ABORT_ON_DATA: 'data for a socket the application closed',
  TCP_TIMEWAIT_SOCKET: 'a segment for a TIME-WAIT socket',
  INVALID_SYN: 'a handshake the listener refused',
  TCP_ABORT_ON_CLOSE: 'closed with unread data',
  TCP_ABORT_ON_LINGER: 'closed with linger 0',
  TCP_ABORT_ON_MEMORY: 'out of socket memory',
  TCP_STATE: 'the application aborted the connection',
  TCP_KEEPALIVE_TIMEOUT: 'keepalive probes unanswered',
  TCP_DISCONNECT_WITH_DATA: 'disconnected with data unsent',
};

/** Why a RST was sent, in words: "no socket [NO_SOCKET]". */
export function reasonText(s: RstSighting): string {
  if (s.reason) return REASON_WORDS[s.reason] ? `${REASON_WORDS[s.reason]} [${s.reason}]` : s.reason;
  // A netfilter REJECT never fires tcp:tcp_send_reset, and the firewall has no TCP
  // socket of its own in any lab: a RST made there is its ruleset's.
  if (s.from === 'firewall') return 'a firewall rule (REJECT --reject-with tcp-reset), no kernel socket';
  return 'kernel reason not recorded';
}

/** "sent by firewall as server" */
export function senderText(s: RstSighting): string {
  return `sent by ${s.from ?? 'an unknown host'}${s.ipSource !== s.from ? ` as ${s.ipSource ?? s.src}` : ''}`;
}

/** The ladder's label: "RST #1 sent by server (NO_SOCKET)"; an exercise shows the number only. */
export function rstLabel(s: RstSighting, mystery = false): string {
  if (mystery) return `RST #${s.id}`;
  return `RST #${s.id} ${senderText(s)}${s.reason ? ` (${s.reason})` : ''}`;
}

/** The packet comment of each copy of a RST in all.pcapng: "RST #1 sent by server: no socket [NO_SOCKET] (closed-port)". */
export function rstComment(s: RstSighting, scenario: string, mystery = false): string {
  if (mystery) return `RST #${s.id}`;
  return `RST #${s.id} ${senderText(s)}: ${reasonText(s)} (${scenario})`;
}
