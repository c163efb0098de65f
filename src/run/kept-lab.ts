// A run inside a kept lab (rstlab run NAME --lab ID) starts from the lab as the class left
// it, and leaves it that way: before the run, each host's iptables (over IPv6: ip6tables) ruleset and every sysctl
// the run will set are read; after it, they are put back. The lab itself, its sockets and
// conntrack entries, and whatever else a class did in it stay as they are.
import type { Lab } from '../lab/backend.js';
import type { Plan } from '../scenario/plan.js';
import { HOSTS, type Host } from '../vocabulary.js';
import { IPTABLES } from '../scenario/family.js';

/** The sysctls a run sets in each host: the scenario's (and its variant's) and its steps'. */
function sysctlsOf(plan: Plan): Map<Host, Set<string>> {
  const names = new Map<Host, Set<string>>(HOSTS.map((h) => [h, new Set<string>()]));
  for (const [host, values] of Object.entries(plan.sysctls) as [Host, Record<string, unknown>][]) {
    for (const n of Object.keys(values)) names.get(host)!.add(n);
  }
  for (const { step } of plan.steps) if (step.do === 'sysctl') names.get(step.host)!.add(step.name);
  return names;
}

/**
 * Tables the run made that the saved ruleset lacks are emptied too: iptables-restore
 * replaces only the tables its input names (a host where iptables never ran saves nothing).
 */
export function restoreRuleset(saved: string, now: string): string {
  const savedTables = new Set([...saved.matchAll(/^\*(\S+)$/gm)].map((m) => m[1]!));
  const extra: string[] = [];
  for (const block of now.split(/^(?=\*)/m)) {
    const table = /^\*(\S+)$/m.exec(block)?.[1];
    if (!table || savedTables.has(table)) continue;
    // built-in chains carry a policy; ACCEPT is what a table starts with
    const chains = [...block.matchAll(/^:(\S+) (ACCEPT|DROP)\b/gm)].map((m) => `:${m[1]} ACCEPT [0:0]`);
    extra.push(`*${table}`, ...chains, 'COMMIT');
  }
  return saved + (extra.length ? `${extra.join('\n')}\n` : '');
}

/** Read what the run will change in a kept lab; the function it resolves to puts it back. */
export async function keepLabState(lab: Lab, plan: Plan): Promise<() => Promise<void>> {
  const names = sysctlsOf(plan);
  const saved = await Promise.all(
    HOSTS.map(async (h) => {
      // the run's family's rules: a run over IPv6 changes ip6tables only
      const rules = await lab.exec(h, [`${IPTABLES[plan.family].iptables}-save`]);
      const values = new Map<string, string>();
      for (const n of names.get(h)!) {
        // a sysctl that does not exist yet (net.netfilter.* before conntrack loads) has nothing to restore
        const r = await lab.exec(h, ['sysctl', '-n', n]);
        if (r.code === 0) values.set(n, r.stdout.trim().replace(/\s+/g, ' '));
      }
      return { host: h, rules: rules.code === 0 ? rules.stdout : undefined, values };
    }),
  );
  return async () => {
    await Promise.all(
      saved.map(async ({ host, rules, values }) => {
        if (rules !== undefined) {
          const now = await lab.exec(host, [`${IPTABLES[plan.family].iptables}-save`]);
          await lab.exec(host, [IPTABLES[plan.family].restore, '-w'], restoreRuleset(rules, now.code === 0 ? now.stdout : ''));
        }
        if (values.size > 0) await lab.exec(host, ['sysctl', '-qw', ...[...values].map(([n, v]) => `${n}=${v}`)]);
      }),
    );
  };
}
