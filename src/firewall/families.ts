// firewall-test over both IP versions. A real gateway is dual-stack, and one of the most
// common firewall mistakes is a hole that exists only over IPv6: the iptables ruleset was
// updated and the ip6tables one was not, or an nft `ip` table covers what only an `inet`
// table would. So: rows name their family (4, 6 or both: expect-schema.ts), a ruleset that
// covers IPv6 with no row testing it gets a warning, and a row whose two halves disagree
// says which family's ruleset differs.
import type { Outcome } from './expect-schema.js';
import type { Expectations, PlannedRow } from './expectations.js';
import type { Judgement } from './judge.js';
import type { Ruleset } from './ruleset.js';

/** An nft table of a family that filters IPv6 (`inet` covers both, `ip6` IPv6 only); `ip` and the rest do not. */
const NFT_IPV6_TABLE = /^\s*(?:add\s+|create\s+)?table\s+(inet|ip6)\b/m;

/** How the ruleset covers IPv6, in words; undefined where it does not. */
export function ipv6Coverage(ruleset: Ruleset, rules6?: Ruleset): string | undefined {
  if (rules6) return `--rules6 ${rules6.file}`;
  const table = ruleset.format === 'nftables' ? NFT_IPV6_TABLE.exec(ruleset.text)?.[1] : undefined;
  return table ? `${ruleset.file} has an nft ${table} table` : undefined;
}

/** What the user should know before the rows run: IPv6 rules no row tests, or IPv6 rows no rule filters. */
export function familyWarnings(ruleset: Ruleset, rules6: Ruleset | undefined, ex: Expectations): string[] {
  const covered = ipv6Coverage(ruleset, rules6);
  const v6rows = ex.rows.some((r) => r.family === 6);
  if (covered && !v6rows) {
    return [`the ruleset covers IPv6 too (${covered}), but no row of ${ex.file} tests IPv6 (family: 6 or both): IPv6 went untested`];
  }
  if (!covered && v6rows) {
    const why = ruleset.format === 'nftables' ? `${ruleset.file} has no inet or ip6 table` : 'no --rules6 ip6tables-save file was given';
    return [`the IPv6 rows meet a firewall with no IPv6 rules (${why}): every IPv6 connection is forwarded`];
  }
  return [];
}

/** What a family's ruleset did with a row's connection, in words. */
const DID: Record<Outcome | 'nothing-sent', string> = {
  reach: 'lets it through',
  'reset-by-server': 'lets it through (to a port where nothing listens)',
  'reset-by-firewall': 'resets it',
  drop: 'drops it',
  unreachable: 'rejects it with an ICMP error',
  'nothing-sent': 'never saw it sent',
};

/**
 * For each row of family both whose two halves were judged differently: the two outcomes
 * side by side on the half that failed, naming its family's ruleset, e.g.
 * `port 23: IPv4 reset-by-firewall, IPv6 reach — the IPv6 ruleset lets it through`.
 */
export function noteFamilies<T extends { row: PlannedRow; judgement: Judgement }>(results: T[]): T[] {
  const byIndex = new Map(results.map((r) => [r.row.index, r]));
  return results.map((r) => {
    const other = r.row.sibling === undefined ? undefined : byIndex.get(r.row.sibling);
    if (!other || r.judgement.passed || r.judgement.observed === other.judgement.observed) return r;
    const [v4, v6] = r.row.family === 4 ? [r, other] : [other, r];
    const sides = `port ${r.row.port}: IPv4 ${v4.judgement.observed}, IPv6 ${v6.judgement.observed}`;
    // both halves wrong, each differently: no one family's ruleset to blame
    const note = other.judgement.passed ? `${sides} — the IPv${r.row.family} ruleset ${DID[r.judgement.observed]}` : sides;
    return { ...r, judgement: { ...r.judgement, familyNote: note } };
  });
}
