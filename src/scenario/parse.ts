// The full check of a scenario file: YAML → schema (zod) → semantic checks, every problem
// located as file:line:col. The heavy part of loading (yaml and zod take ~100 ms to load),
// so load.ts imports it only for a file whose check is not cached.
import { checkScenario } from './checks.js';
import { collect, issueProblems, readYaml, type SourcePath } from './messages.js';
import { Scenario } from './schema.js';
import { CAUSE_VARIANT } from '../vocabulary.js';
import type { LoadedScenario } from './load.js';

/** Load from text already read; `file` is only used in messages. */
export function parseScenario(text: string, file: string): LoadedScenario {
  const { data, locate, place } = readYaml(text, file, 'the file holds no scenario (expected a mapping with name, summary, explanation, steps, expect)');

  const parsed = Scenario.safeParse(data);
  if (!parsed.success) {
    throw collect(file, place(issueProblems(parsed.error.issues, [], data)));
  }
  const scenario = parsed.data;
  const variants = [CAUSE_VARIANT, ...Object.keys(scenario.variants)];

  const semantic = checkScenario(scenario, variants, locate);
  if (semantic.length > 0) throw collect(file, place(semantic));

  const lineOf = (path: SourcePath) => locate(path).line;
  const expectLines: Record<string, number[]> = {
    [CAUSE_VARIANT]: scenario.expect.map((_, i) => lineOf(['expect', i])),
  };
  for (const [name, v] of Object.entries(scenario.variants)) {
    expectLines[name] = v.expect.map((_, i) => lineOf(['variants', name, 'expect', i]));
  }
  return {
    file,
    scenario,
    variants,
    lines: {
      steps: scenario.steps.map((_, i) => lineOf(['steps', i])),
      expect: expectLines,
      rules: (scenario.firewall?.rules ?? []).map((_, i) => locate(['firewall', 'rules', i])),
      ruleset: locate(['firewall', scenario.firewall?.nftables !== undefined ? 'nftables' : 'iptables']),
      ...(scenario.firewall?.ip6tables !== undefined ? { ruleset6: locate(['firewall', 'ip6tables']) } : {}),
    },
    locate: async (path) => locate(path),
  };
}
