// The nine common causes of a TCP reset that rstlab teaches (docs/RST-CAUSES in the
// project brief): each scenario says in its `teach.causes` which it covers, `rstlab list`
// shows them, and a test checks that every one is covered. Plain data, no schema library:
// `list` and `explain` load it on every call.

export const COMMON_CAUSES = [
  { id: 'closed-port', title: 'closed port: a SYN finds no listener' },
  { id: 'syn-conflict', title: 'SYN conflict: a new SYN on a 4-tuple the peer still holds' },
  { id: 'accept-queue', title: 'full accept queue with tcp_abort_on_overflow=1' },
  { id: 'half-open', title: 'half-open connection: the peer restarted and forgot it' },
  { id: 'firewall', title: 'firewall rule: REJECT --reject-with tcp-reset, stateful INVALID' },
  { id: 'time-wait-assassination', title: 'TIME-WAIT assassination (RFC 1337)' },
  { id: 'app-abort', title: 'application abort: SO_LINGER 0' },
  { id: 'idle-timeout', title: 'idle timeout: conntrack expiry, keepalive' },
  { id: 'unread-data-close', title: 'close with unread data (RFC 2525 §2.17)' },
  // a tenth, which the troubleshooting literature names and no lab tool reproduces (issue 9)
  { id: 'duplicate-address', title: "duplicate address: another host takes the server's IP (gratuitous ARP)" },
] as const;

export const CAUSE_IDS = COMMON_CAUSES.map((c) => c.id) as unknown as readonly [CauseId, ...CauseId[]];
export type CauseId = (typeof COMMON_CAUSES)[number]['id'];

/** "3. full accept queue ..." */
export function causeLine(id: string): string {
  const i = COMMON_CAUSES.findIndex((c) => c.id === id);
  return i < 0 ? id : `${i + 1}. ${COMMON_CAUSES[i]!.title}`;
}

/** The cause's number, 1 to 9. */
export const causeNumber = (id: string): number => COMMON_CAUSES.findIndex((c) => c.id === id) + 1;
