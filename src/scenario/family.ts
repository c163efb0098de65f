// A scenario's iptables rules over IPv6. A scenario's rule text is written once, for both
// families (docs/DESIGN.md "Both families"): for a run over IPv6 it goes to ip6tables (and
// the firewall's rules to ip6tables-restore) with the few words that name IPv4 things
// replaced by their IPv6 twins:
// - a lab address or subnet (10.0.2.2, 10.0.1.0/24, 10.0.2.2/32, or a list of them) by the
//   same host's or net's IPv6 address (fd00:2::2, fd00:1::/64, fd00:2::2/128);
// - an ICMP error type of REJECT (--reject-with icmp-port-unreachable, ...) by the ICMPv6 one
//   ip6tables offers for it (ip6t_REJECT: icmp6-port-unreachable, ...).
// Any other IPv4 address, and `-p icmp`, have no twin: such a rule cannot run over IPv6 and
// is bad input for a run with --family 6, located at the word.
import { TOPOLOGY, TOPOLOGY6, type Family } from '../vocabulary.js';
import { tokenize, type RuleProblem } from './iptables-rule.js';

/** Each lab address and subnet (IPv4) with its IPv6 twin. */
const TWINS: ReadonlyMap<string, string> = new Map([
  [TOPOLOGY.client.address, TOPOLOGY6.client.address],
  [TOPOLOGY.server.address, TOPOLOGY6.server.address],
  [TOPOLOGY.firewall.addresses.eth0, TOPOLOGY6.firewall.addresses.eth0],
  [TOPOLOGY.firewall.addresses.eth1, TOPOLOGY6.firewall.addresses.eth1],
  [TOPOLOGY.subnets.a, TOPOLOGY6.subnets.a],
  [TOPOLOGY.subnets.b, TOPOLOGY6.subnets.b],
]);

/** REJECT's ICMP answers and their ICMPv6 counterparts (iptables-extensions(8), REJECT). */
const REJECT_TWINS: ReadonlyMap<string, string> = new Map([
  ['icmp-net-unreachable', 'icmp6-no-route'],
  ['icmp-host-unreachable', 'icmp6-addr-unreachable'],
  ['icmp-port-unreachable', 'icmp6-port-unreachable'],
  ['icmp-proto-unreachable', 'icmp6-port-unreachable'],
  ['icmp-net-prohibited', 'icmp6-adm-prohibited'],
  ['icmp-host-prohibited', 'icmp6-adm-prohibited'],
  ['icmp-admin-prohibited', 'icmp6-adm-prohibited'],
]);

const IPV4ISH = /\d+\.\d+\.\d+\.\d+/;

/** One address or subnet of a rule, in IPv6; undefined where it has no twin. */
function twin(item: string): string | undefined {
  const [addr, bits] = item.split('/');
  if (bits === undefined) return TWINS.get(item);
  if (bits === '32') return TWINS.has(addr!) ? `${TWINS.get(addr!)}/128` : undefined;
  return TWINS.get(item);
}

/** The rule as it runs in a family: unchanged for IPv4; for IPv6 with its IPv4 words replaced, or the first word that has no twin. */
export function ruleInFamily(rule: string, family: Family): { ok: string; problem?: undefined } | { ok?: undefined; problem: RuleProblem } {
  if (family === 4) return { ok: rule };
  const t = tokenize(rule);
  if (t.problem) return { problem: t.problem };
  let out = '';
  let at = 0;
  const words = t.ok;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w.quoted) continue; // a comment's text is the user's
    let replacement: string | undefined;
    const prev = words[i - 1];
    if (prev && !prev.quoted && (prev.text === '-p' || prev.text === '--protocol') && /^(icmp|1)$/i.test(w.text)) {
      return { problem: { offset: w.offset, message: `-p ${w.text} is IPv4's ICMP: this rule has no IPv6 form (ICMPv6 is ipv6-icmp); give the scenario ipv6: { skip: why }` } };
    } else if (prev && !prev.quoted && prev.text === '--reject-with' && w.text.startsWith('icmp-')) {
      replacement = REJECT_TWINS.get(w.text);
      if (!replacement) return { problem: { offset: w.offset, message: `--reject-with ${w.text} has no ICMPv6 counterpart` } };
    } else if (IPV4ISH.test(w.text)) {
      const neg = w.text.startsWith('!') ? '!' : '';
      const items = w.text.slice(neg.length).split(',');
      const mapped = items.map(twin);
      const missing = items.find((_, k) => mapped[k] === undefined);
      if (missing !== undefined) {
        return { problem: { offset: w.offset, message: `${missing} is not one of the lab's addresses or subnets, so it has no IPv6 twin; name a lab address (${[...TWINS.keys()].join(', ')}) or give the scenario ipv6: { skip: why }` } };
      }
      replacement = neg + mapped.join(',');
    }
    if (replacement === undefined) continue;
    out += rule.slice(at, w.offset) + replacement;
    at = w.offset + w.text.length;
  }
  return { ok: out + rule.slice(at) };
}

/** The iptables programs of a family. */
export const IPTABLES: Record<Family, { iptables: string; restore: string }> = {
  4: { iptables: 'iptables', restore: 'iptables-restore' },
  6: { iptables: 'ip6tables', restore: 'ip6tables-restore' },
};
