// The programs a lab runs on this machine, the Debian package of each, and which of them a
// run needs: found missing before any lab is built (exit 3, with what to install).
import { LabError } from '../errors.js';
import { findInPath } from './process.js';

/** Each program and the Debian package that has it (lab/Dockerfile installs them all). */
export const TOOL_PACKAGE = {
  ip: 'iproute2',
  ss: 'iproute2',
  nsenter: 'util-linux',
  tcpdump: 'tcpdump',
  iptables: 'iptables',
  'iptables-restore': 'iptables',
  sysctl: 'procps',
  conntrack: 'conntrack',
  nft: 'nftables',
} as const;
export type Tool = keyof typeof TOOL_PACKAGE;

/** What every lab host runs on every run: addresses and routes, captures, rules, sysctls. */
export const BASE_TOOLS: readonly Tool[] = ['ip', 'nsenter', 'tcpdump', 'iptables', 'iptables-restore', 'sysctl'];

/** The little of a plan that says which tools it needs (structural, so the lab does not depend on the scenario code). */
export interface ToolNeeds {
  sysctls: Partial<Record<string, Record<string, unknown>>>;
  steps: readonly { step: { do: string } }[];
  /** a ruleset file for the firewall host: nft loads an nftables one */
  firewallRuleset?: { format: string };
}

/**
 * The tools these plans need beyond BASE_TOOLS: conntrack where a net.netfilter sysctl is
 * set (those sysctls exist only once nf_conntrack is loaded, and the runner loads it with
 * `conntrack -L`), ss where a socket is killed (ss -K), nft where an nftables ruleset is loaded.
 */
export function toolsFor(plans: readonly ToolNeeds[]): Tool[] {
  const tools = new Set<Tool>();
  for (const p of plans) {
    if (Object.values(p.sysctls).some((s) => Object.keys(s ?? {}).some((n) => n.startsWith('net.netfilter.')))) tools.add('conntrack');
    if (p.steps.some((s) => s.step.do === 'killSocket')) tools.add('ss');
    if (p.firewallRuleset?.format === 'nftables') tools.add('nft');
  }
  return [...tools];
}

/** Throw a LabError naming every missing tool and the packages to install, in one line. */
export function requireTools(tools: readonly Tool[], where = ''): void {
  const missing = [...new Set(tools)].filter((t) => !findInPath(t));
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((t) => TOOL_PACKAGE[t]))];
  throw new LabError(`missing ${missing.join(', ')}${where}`, `install ${pkgs.length > 1 ? 'them' : 'it'}: apt-get install ${pkgs.join(' ')}`);
}
