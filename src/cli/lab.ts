// `rstlab lab up|ls|shell|exec|down`: a lab a class keeps running and pokes at with its own
// tools, in the spirit of containerlab's deploy/inspect/destroy and Kathará's
// lstart/connect/exec/lclean. A kept lab's owner record says `kept` (lab/owner.ts), so
// `rstlab cleanup` leaves it alone and only `lab down` removes it; `rstlab run NAME --lab ID`
// runs a scenario inside it (run/kept-lab.ts puts back what the run changed).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { abortable, InputError } from '../errors.js';
import { newLabId, type Backend, type Lab } from '../lab/backend.js';
import { backendByName } from '../lab/backends.js';
import { listLabRecords, readLabRecord, type LabRecord } from '../lab/owner.js';
import { toolsFor } from '../lab/tools.js';
import { iptablesRestore } from '../run/runner.js';
import { loadScenario } from '../scenario/load.js';
import { planFor, type Plan } from '../scenario/plan.js';
import { HOSTS, TOPOLOGY, TOPOLOGY6, type Host } from '../vocabulary.js';
import { removeLab } from './cleanup.js';
import { scenarioFile } from './run.js';

/** The kept labs on this machine, oldest first. */
export async function keptLabs(): Promise<LabRecord[]> {
  return (await listLabRecords()).filter((r) => r.owner.kept).sort((a, b) => a.created - b.created);
}

/** The lab a command means: the one named, or the only kept lab there is. */
export async function keptLabId(id: string | undefined): Promise<string> {
  if (id) return id;
  const kept = await keptLabs();
  if (kept.length === 1) return kept[0]!.id;
  if (kept.length === 0) throw new InputError('there is no kept lab: start one with rstlab lab up');
  throw new InputError(`there are ${kept.length} kept labs (${kept.map((r) => r.id).join(', ')}): name one with --lab ID`);
}

/** The backend of a kept lab and the lab itself, up, to run in or to enter. */
export async function attachKeptLab(id: string): Promise<{ backend: Backend; lab: Lab }> {
  const record = await readLabRecord(id);
  if (!record?.owner.kept) throw new InputError(`no kept lab ${id} (rstlab lab ls shows them)`);
  const backend = await backendByName(record.backend);
  return { backend, lab: await backend.attach(id) };
}

/** The backend a kept lab was built on (the only one, when none is named). */
export async function keptLabBackend(id: string | undefined): Promise<string> {
  const record = await readLabRecord(await keptLabId(id));
  if (!record?.owner.kept) throw new InputError(`no kept lab ${id} (rstlab lab ls shows them)`);
  return record.backend;
}

export function hostArg(host: string): Host {
  if (!(HOSTS as readonly string[]).includes(host)) throw new InputError(`no host "${host}" in a lab; the hosts are ${HOSTS.join(', ')}`);
  return host as Host;
}

/** The scenario's own settings of each host, without its steps: sysctls, then the firewall's rules. */
async function setUpAs(lab: Lab, plan: Plan): Promise<void> {
  if (plan.firewallRules.length > 0) await iptablesRestore(lab, 'firewall', plan.firewallRules, plan.file);
  for (const [host, values] of Object.entries(plan.sysctls) as [Host, Record<string, string | number>][]) {
    // net.netfilter.* exist once conntrack is loaded; asking for its table loads it (as a run does)
    if (Object.keys(values).some((n) => n.startsWith('net.netfilter.'))) await lab.exec(host, ['conntrack', '-L']);
    const r = await lab.exec(host, ['sysctl', '-qw', ...Object.entries(values).map(([n, v]) => `${n}=${v}`)]);
    if (r.code !== 0) throw new InputError(`the kernel refused a sysctl of ${plan.name} in ${host}: ${r.stderr.trim()}`, plan.file);
  }
}

/** How to get into each host and watch it, as `lab up` prints it. */
export function howToEnter(lab: Lab): string {
  const id = lab.id;
  const fw = TOPOLOGY.firewall.addresses;
  const direct = lab.backend === 'netns' ? `ip netns exec rstlab-${id}-client bash` : `docker exec -it rstlab-${id}-client bash`;
  const wireshark = lab.backend === 'netns'
    ? `ip netns exec rstlab-${id}-firewall tcpdump -i eth0 -U -w - | wireshark -k -i -`
    : `docker exec rstlab-${id}-firewall tcpdump -i eth0 -U -w - | wireshark -k -i -`;
  return [
    `hosts: client ${TOPOLOGY.client.address} (eth0) — firewall ${fw.eth0} (eth0) | ${fw.eth1} (eth1) — server ${TOPOLOGY.server.address} (eth0)`,
    `  IPv6: client ${TOPOLOGY6.client.address} — firewall ${TOPOLOGY6.firewall.addresses.eth0} | ${TOPOLOGY6.firewall.addresses.eth1} — server ${TOPOLOGY6.server.address}`,
    `ephemeral ports of this lab: ${lab.ports.min}-${lab.ports.max}`,
    '',
    'get into a host (ip, ss, nstat, tcpdump, iptables, conntrack work there):',
    `  rstlab lab shell client --lab ${id}              (or server, firewall)`,
    `  rstlab lab exec server --lab ${id} -- ss -tan`,
    `  ${direct}`,
    'watch it live (firewall eth0 is capture point firewall-a, eth1 is firewall-b):',
    `  rstlab lab exec firewall --lab ${id} -- tcpdump -i eth0 -nn`,
    `  ${wireshark}`,
    'run a scenario in it, while you watch:',
    `  rstlab run closed-port --lab ${id}`,
    `take it down: rstlab lab down ${id}`,
  ].join('\n');
}

export interface LabUpOptions {
  scenario?: string;
  variant: string;
  backend: string;
}

/** Build a kept lab, set up as a scenario would be (no steps); Ctrl-C takes it down again. */
export async function labUp(opts: LabUpOptions, signal: AbortSignal): Promise<string> {
  const plan = opts.scenario ? planFor(await loadScenario(scenarioFile(opts.scenario)), opts.variant) : undefined;
  if (!opts.scenario && opts.variant !== 'cause') throw new InputError('--variant needs --scenario');
  const backend = await backendByName(opts.backend);
  await abortable(backend.check(plan ? toolsFor([plan]) : []), signal);
  const up = backend.up(newLabId(), { kept: true, impostor: plan?.impostor ?? false });
  let lab: Lab | undefined;
  try {
    lab = await abortable(up, signal);
    if (plan) await abortable(setUpAs(lab, plan), signal);
  } catch (e) {
    // nothing is kept of a lab that did not come up whole
    lab ??= await up.catch(() => undefined);
    await lab?.down().catch(() => undefined);
    throw e;
  }
  const as = plan ? `, set up as ${plan.name} (${plan.variant}): its sysctls and firewall rules, none of its steps` : '';
  return `kept lab ${lab.id} is up on ${lab.backend}${as}; it stays up until rstlab lab down ${lab.id}\n\n${howToEnter(lab)}`;
}

export async function labLs(): Promise<string> {
  const kept = await keptLabs();
  if (kept.length === 0) return 'no kept lab (rstlab lab up starts one)';
  const rows = kept.map((r) => [r.id, r.backend, new Date(r.created).toISOString().replace(/\.\d+Z$/, 'Z'), `${r.ports.min}-${r.ports.max}`]);
  const head = ['lab', 'backend', 'up since', 'ports'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  return [head, ...rows].map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** Run argv in a host of a kept lab with this terminal attached; resolves to its exit code. */
export async function labTerminal(host: string, id: string | undefined, argv: string[], tty: boolean): Promise<number> {
  const h = hostArg(host);
  const { lab } = await attachKeptLab(await keptLabId(id));
  const cmd = lab.terminalArgv(h, argv, tty);
  // nstat keeps its history in one file per user: one per lab host keeps their deltas apart
  const env = { ...process.env, NSTAT_HISTORY: `/tmp/rstlab-${lab.id}-${h}.nstat`, PS1: `[rstlab ${lab.id} ${h}] \\w# ` };
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: 'inherit', env });
  // Ctrl-C and Ctrl-\ in the terminal are the command's (a shell ignores them at its prompt,
  // tcpdump stops): rstlab waits for it instead of leaving it behind
  const ignore = () => undefined;
  process.on('SIGINT', ignore).on('SIGQUIT', ignore);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', (e) => reject(new InputError(`could not start ${cmd[0]}: ${e.message}`)));
      child.on('close', (code, signal) => resolve(code ?? 128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 9)));
    });
  } finally {
    process.off('SIGINT', ignore).off('SIGQUIT', ignore);
  }
}

/** An interactive shell: bash without the user's rc files (their prompt would hide which host this is). */
export function shellArgv(backend: string): string[] {
  if (backend === 'docker' || existsSync('/bin/bash')) return ['bash', '--norc', '--noprofile', '-i'];
  return ['sh', '-i'];
}

export async function labDown(id: string | undefined, all: boolean): Promise<string[]> {
  if (!id && !all) throw new InputError('name the lab to take down (rstlab lab ls shows them), or --all');
  if (id && all) throw new InputError('give a lab id or --all, not both');
  const records = all ? await keptLabs() : [await readLabRecord(id!)];
  const removed: string[] = [];
  for (const r of records) {
    if (!r) throw new InputError(`no lab ${id} (rstlab lab ls shows the kept ones)`);
    if (!r.owner.kept) throw new InputError(`lab ${r.id} is not a kept lab: it belongs to a run (pid ${r.owner.pid}) and comes down with it`);
    const backend = await backendByName(r.backend);
    const found = (await backend.labs()).find((l) => l.id === r.id) ?? { id: r.id, backend: backend.name, names: [] };
    removed.push(...(await removeLab(backend, found)));
  }
  return removed;
}
