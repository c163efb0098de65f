// One packet as one line, in the shape tcpdump prints it, so that a failure detail, the
// terminal report and `tcpdump -r client.pcap` can be read side by side.
import { TCP, flagString, type CapturePoint, type IcmpError, type TcpPacket } from '../vocabulary.js';

/** The widest capture point name ("firewall-a"), so that lines of several points line up. */
const POINT_WIDTH = 10;

/**
 * `client     12:00:00.123456 10.0.1.2.40000 > 10.0.2.2.7: Flags [S], seq 1000, win 64240, length 0, ttl 64`
 *
 * The time is UTC (a report read on another machine shows the same times); the ack is
 * printed only when the ACK flag is set, as tcpdump does, because without ACK the field
 * means nothing (RFC 9293 §3.1). The capture point leads the line when given.
 */
export function formatPacket(p: TcpPacket, point?: CapturePoint): string {
  const ack = p.flags & TCP.ACK ? `, ack ${p.ack}` : '';
  const line =
    `${formatTime(p.time)} ${endpoint(p.src, p.sport)} > ${endpoint(p.dst, p.dport)}: ` +
    `Flags [${flagString(p.flags)}], seq ${p.seq}${ack}, win ${p.window}, length ${p.payloadLength}, ${p.ipVersion === 6 ? 'hlim' : 'ttl'} ${p.ttl}`;
  return point === undefined ? line : `${point.padEnd(POINT_WIDTH)} ${line}`;
}

/** hh:mm:ss.uuuuuu (UTC) of a time in seconds since the epoch. */
export function formatTime(seconds: number): string {
  const micros = Math.round(seconds * 1e6);
  const day = ((Math.floor(micros / 1e6) % 86_400) + 86_400) % 86_400;
  const frac = ((micros % 1e6) + 1e6) % 1e6;
  const hh = Math.floor(day / 3600);
  const mm = Math.floor((day % 3600) / 60);
  const ss = day % 60;
  return `${pad(hh, 2)}:${pad(mm, 2)}:${pad(ss, 2)}.${pad(frac, 6)}`;
}

function endpoint(address: string, port: number): string {
  return `${address}.${port}`;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** ICMP type 3 code 3 as tcpdump words it ("port unreachable"), with the segment it quotes. */
const UNREACHABLE_CODE: Record<number, string> = { 0: 'net unreachable', 1: 'host unreachable', 3: 'port unreachable', 9: 'net prohibited', 10: 'host prohibited', 13: 'admin prohibited' };

/** ICMPv6 destination unreachable (type 1) codes, RFC 4443 §3.1. */
const UNREACHABLE6_CODE: Record<number, string> = { 0: 'no route', 1: 'admin prohibited', 3: 'address unreachable', 4: 'port unreachable', 5: 'source address failed policy', 6: 'reject route' };

export function icmpLabel(p: IcmpError): string {
  const v6 = p.ipVersion === 6;
  const what = !v6 && p.type === 3 ? UNREACHABLE_CODE[p.code] ?? `unreachable code ${p.code}` : v6 && p.type === 1 ? UNREACHABLE6_CODE[p.code] ?? `unreachable code ${p.code}` : `type ${p.type} code ${p.code}`;
  return `${v6 ? 'ICMPv6' : 'ICMP'} ${what} from ${p.src}, quoting ${p.quoted.sport}→${p.quoted.dport} seq ${p.quoted.seq}`;
}
