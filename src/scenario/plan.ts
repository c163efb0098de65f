// A run's plan: what one run of a loaded scenario does (the steps of a variant, the
// expectations it is judged by, the sysctls and rules of each host).
import { dirname, isAbsolute, join } from 'node:path';
import { InputError } from '../errors.js';
import type { LoadedScenario } from './load.js';
import { didYouMean } from './did-you-mean.js';
import type { Expectation, Step, Teach } from './schema.js';
import { CAUSE_VARIANT, HOSTS, type CapturePoint, type Family, type Host } from '../vocabulary.js';
import { ruleInFamily } from './family.js';

export interface Plan {
  file: string;
  name: string;
  summary: string;
  explanation: string;
  rfc: string[];
  variant: string;
  expectOf: string;
  /** the IP version the run uses (--family); its rules are already in that family's form (family.ts) */
  family: Family;
  /** over IPv6: why the scenario does not run (its ipv6.skip); such a plan is reported as skipped, never run */
  skip?: string;
  sysctls: Partial<Record<Host, Record<string, string | number>>>;
  /** The firewall's rules, each with where the scenario file writes it. */
  firewallRules: { rule: string; line: number; col: number }[];
  /** The firewall's ruleset file (a path resolved from the scenario file's folder), loaded before its rules. */
  firewallRuleset?: { format: 'iptables' | 'ip6tables' | 'nftables'; file: string; line: number; col: number };
  capture: CapturePoint[];
  steps: { step: Step; line: number }[];
  expect: { expectation: Expectation; line: number }[];
  /** the scenario's teaching notes (rstlab explain; the HTML report shows them) */
  teach?: Teach;
  /** the lab holds an impostor on the server's network (a step announces an address) */
  impostor: boolean;
}

/** What one run does: the steps of `variant`, with the expectations of `expectOf` (default: the same variant), over `family`. */
export function planFor(s: LoadedScenario, variant: string, expectOf?: string, family: Family = 4): Plan {
  const expectFrom = expectOf ?? variant;
  for (const v of [variant, expectFrom]) {
    if (!s.variants.includes(v)) {
      throw new InputError(`unknown variant "${v}"${didYouMean(v, s.variants)}; ${s.scenario.name} has: ${s.variants.join(', ')}`, s.file);
    }
  }
  const sc = s.scenario;
  const variantDef = variant === CAUSE_VARIANT ? undefined : sc.variants[variant];

  const sysctls: Plan['sysctls'] = {};
  for (const host of HOSTS) {
    const merged = { ...sc.sysctls?.[host], ...variantDef?.sysctls?.[host] };
    if (Object.keys(merged).length > 0) sysctls[host] = merged;
  }

  const expectations = expectFrom === CAUSE_VARIANT ? sc.expect : sc.variants[expectFrom]!.expect;
  const expectLines = s.lines.expect[expectFrom] ?? [];
  const skip = family === 6 ? sc.ipv6?.skip : undefined;
  const steps = sc.steps.flatMap((step, i) => (runsIn(step, variant) ? [{ step, line: s.lines.steps[i] ?? 0 }] : []));
  return {
    file: s.file,
    name: sc.name,
    summary: sc.summary,
    explanation: sc.explanation,
    rfc: sc.rfc ?? [],
    variant,
    expectOf: expectFrom,
    family,
    ...(skip !== undefined ? { skip } : {}),
    sysctls,
    firewallRules: (sc.firewall?.rules ?? []).map((rule, i) => {
      const at = { line: s.lines.rules[i]?.line ?? 0, col: s.lines.rules[i]?.col ?? 1 };
      return { rule: skip !== undefined ? rule : inFamily(rule, family, s.file, at.line, at.col), ...at };
    }),
    ...rulesetOf(s, family, skip !== undefined),
    capture: sc.capture,
    steps: skip !== undefined ? steps : steps.map(({ step, line }) => ({ step: stepInFamily(step, family, s.file, line), line })),
    expect: expectations.map((expectation, i) => ({ expectation, line: expectLines[i] ?? 0 })),
    ...(sc.teach ? { teach: sc.teach } : {}),
    // Every variant of the scenario gets the same lab: a control differs in one thing only.
    impostor: sc.steps.some((step) => step.do === 'announce'),
  };
}

function rulesetOf(s: LoadedScenario, family: Family, skipped: boolean): Pick<Plan, 'firewallRuleset'> {
  const f = s.scenario.firewall;
  const format = f?.nftables !== undefined ? 'nftables' : f?.iptables !== undefined ? (family === 6 ? 'ip6tables' : 'iptables') : undefined;
  if (!format) return {};
  const at = (format === 'ip6tables' ? s.lines.ruleset6 : s.lines.ruleset) ?? s.lines.ruleset ?? { line: 0, col: 1 };
  const name = format === 'ip6tables' ? f!.ip6tables : f![format];
  if (name === undefined) {
    // an iptables-save file holds IPv4 rules only: a run over IPv6 needs the ip6tables half
    if (skipped) return {};
    throw new InputError('a run over IPv6 needs the ruleset\'s IPv6 half: name an ip6tables-save file as firewall.ip6tables (or give the scenario ipv6: { skip: why })', s.file, at.line, at.col);
  }
  return { firewallRuleset: { format, file: isAbsolute(name) ? name : join(dirname(s.file), name), ...at } };
}

/** A rule in the family's form (family.ts); one with no IPv6 form is bad input, at its word. */
function inFamily(rule: string, family: Family, file: string, line: number, col: number): string {
  const r = ruleInFamily(rule, family);
  if (r.problem) throw new InputError(`over IPv6 (--family 6): ${r.problem.message}`, file, line, col);
  return r.ok;
}

/** A step as it runs in a family: its iptables rule in that family's form; an announce (ARP) only over IPv4. */
function stepInFamily(step: Step, family: Family, file: string, line: number): Step {
  if (family === 4) return step;
  if (step.do === 'iptables') return { ...step, rule: inFamily(step.rule, family, file, line, 1) };
  if (step.do === 'announce') {
    throw new InputError('announce takes an address with gratuitous ARP, which is IPv4\'s: give the scenario ipv6: { skip: why } to run it over IPv4 only', file, line);
  }
  return step;
}

/** Whether a step runs in a variant: a step without `when` runs in all of them. */
export function runsIn(step: Step, variant: string): boolean {
  if (step.when === undefined) return true;
  return typeof step.when === 'string' ? step.when === variant : step.when.includes(variant);
}
