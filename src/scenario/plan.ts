// A run's plan: what one run of a loaded scenario does (the steps of a variant, the
// expectations it is judged by, the sysctls and rules of each host).
import { dirname, isAbsolute, join } from 'node:path';
import { InputError } from '../errors.js';
import type { LoadedScenario } from './load.js';
import { didYouMean } from './did-you-mean.js';
import type { Expectation, Step, Teach } from './schema.js';
import { CAUSE_VARIANT, HOSTS, type CapturePoint, type Host } from '../vocabulary.js';

export interface Plan {
  file: string;
  name: string;
  summary: string;
  explanation: string;
  rfc: string[];
  variant: string;
  expectOf: string;
  sysctls: Partial<Record<Host, Record<string, string | number>>>;
  /** The firewall's rules, each with where the scenario file writes it. */
  firewallRules: { rule: string; line: number; col: number }[];
  /** The firewall's ruleset file (a path resolved from the scenario file's folder), loaded before its rules. */
  firewallRuleset?: { format: 'iptables' | 'nftables'; file: string; line: number; col: number };
  capture: CapturePoint[];
  steps: { step: Step; line: number }[];
  expect: { expectation: Expectation; line: number }[];
  /** the scenario's teaching notes (rstlab explain; the HTML report shows them) */
  teach?: Teach;
  /** the lab holds an impostor on the server's network (a step announces an address) */
  impostor: boolean;
}

/** What one run does: the steps of `variant`, with the expectations of `expectOf` (default: the same variant). */
export function planFor(s: LoadedScenario, variant: string, expectOf?: string): Plan {
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
  return {
    file: s.file,
    name: sc.name,
    summary: sc.summary,
    explanation: sc.explanation,
    rfc: sc.rfc ?? [],
    variant,
    expectOf: expectFrom,
    sysctls,
    firewallRules: (sc.firewall?.rules ?? []).map((rule, i) => ({ rule, line: s.lines.rules[i]?.line ?? 0, col: s.lines.rules[i]?.col ?? 1 })),
    ...rulesetOf(s),
    capture: sc.capture,
    steps: sc.steps.flatMap((step, i) => (runsIn(step, variant) ? [{ step, line: s.lines.steps[i] ?? 0 }] : [])),
    expect: expectations.map((expectation, i) => ({ expectation, line: expectLines[i] ?? 0 })),
    ...(sc.teach ? { teach: sc.teach } : {}),
    // Every variant of the scenario gets the same lab: a control differs in one thing only.
    impostor: sc.steps.some((step) => step.do === 'announce'),
  };
}

function rulesetOf(s: LoadedScenario): Pick<Plan, 'firewallRuleset'> {
  const f = s.scenario.firewall;
  const format = f?.nftables !== undefined ? 'nftables' : f?.iptables !== undefined ? 'iptables' : undefined;
  if (!format) return {};
  const at = s.lines.ruleset ?? { line: 0, col: 1 };
  return { firewallRuleset: { format, file: isAbsolute(f![format]!) ? f![format]! : join(dirname(s.file), f![format]!), ...at } };
}

/** Whether a step runs in a variant: a step without `when` runs in all of them. */
export function runsIn(step: Step, variant: string): boolean {
  if (step.when === undefined) return true;
  return typeof step.when === 'string' ? step.when === variant : step.when.includes(variant);
}
