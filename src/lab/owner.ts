// Who owns a lab, and which ephemeral ports are its own.
//
// Many rstlab processes share one machine (CI jobs, a kept lab beside a run), so nothing may
// remove a lab unless its owner is gone. Every lab has a record, written BEFORE anything of
// the lab is made and removed AFTER all of it is gone, so that whatever of a lab exists, its
// record exists too: /run/rstlab/labs/<id>.json holds the owner (pid, the pid's start time
// from /proc/<pid>/stat field 22 — a pid reused by another process has another start time —,
// the boot id, and `kept`: a kept lab outlives its process, issue 6) and the lab's port slot.
// /run is a tmpfs: after a reboot the records are gone, and so are the namespaces.
//
// Port slots: the kernel's reset reasons come from one host-wide tracepoint, matched by
// 4-tuple, and every lab has the same addresses. Each lab gets a range of SLOT_SIZE ports of
// its own, set as net.ipv4.ip_local_port_range in its end hosts (the sysctl belongs to the
// network namespace) and used for pinned ports, so no two labs alive at once can have the
// same 4-tuple, and a trace event is the lab's only if one of its ports is in its range.
// A slot is a file /run/rstlab/slots/<n> made with link(2), which fails if the name exists:
// two labs can never hold the same slot. A slot whose owner is gone is taken over.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, mkdir, readFile, readdir, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../errors.js';

/** Where records and slots live; RSTLAB_STATE_DIR moves them (the unit tests use a folder of their own). */
export const stateDir = (): string => process.env.RSTLAB_STATE_DIR ?? '/run/rstlab';
const labsDir = () => join(stateDir(), 'labs');
const slotsDir = () => join(stateDir(), 'slots');

/** 40 slots of 1000 ports, 20000–59999: above every port a scenario listens on, and each
 * range starts even and ends odd, as the kernel asks of ip_local_port_range. */
export const SLOT_SIZE = 1000;
const FIRST_PORT = 20000;
const SLOTS = 40;

export interface Owner {
  pid: number;
  /** clock ticks after boot at which the pid started (/proc/<pid>/stat field 22) */
  startTime: number;
  boot: string;
  /** a kept lab outlives its process (issue 6); nothing makes one yet */
  kept: boolean;
}

export interface PortRange {
  min: number;
  max: number;
}

export interface LabRecord {
  id: string;
  backend: string;
  owner: Owner;
  slot: number;
  ports: PortRange;
  created: number;
}

const rangeOf = (slot: number): PortRange => ({ min: FIRST_PORT + slot * SLOT_SIZE, max: FIRST_PORT + (slot + 1) * SLOT_SIZE - 1 });

/** The start time of a process, or undefined when there is no such process. */
export function startTimeOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // field 2 (comm) is in parentheses and may hold spaces: count fields after the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[22 - 3]);
  } catch {
    return undefined;
  }
}

let bootId: string | undefined;
function boot(): string {
  bootId ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return bootId;
}

export function currentOwner(): Owner {
  return { pid: process.pid, startTime: startTimeOf(process.pid)!, boot: boot(), kept: false };
}

/** Why an owner still counts, or undefined when it is gone (and its labs may be removed). */
export function ownerAlive(o: Owner): string | undefined {
  if (o.boot !== boot()) return undefined;
  if (o.kept) return `it is a kept lab of pid ${o.pid}`;
  const t = startTimeOf(o.pid);
  return t !== undefined && t === o.startTime ? `owner pid ${o.pid} is running` : undefined;
}

/** Write a file whole or not at all: a reader never sees half a record. */
async function writeNew(path: string, text: string): Promise<boolean> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, text);
  try {
    await link(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

interface SlotClaim {
  lab: string;
  owner: Owner;
}

/** Take a slot over from an owner that is gone. The file is first moved to a name of ours,
 * so that of two processes reclaiming the same slot only one gets it; the one who got it
 * checks what it moved, and if that was a fresh claim (made between our read and our move),
 * puts it back. */
async function reclaim(path: string): Promise<void> {
  const mine = `${path}.reclaim.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    await rename(path, mine);
  } catch {
    return; // someone else reclaimed it first
  }
  const claim = await readJson<SlotClaim>(mine);
  if (claim && ownerAlive(claim.owner)) await link(mine, path).catch(() => undefined);
  await unlink(mine).catch(() => undefined);
}

async function claimSlot(lab: string, owner: Owner): Promise<number> {
  await mkdir(slotsDir(), { recursive: true });
  const text = JSON.stringify({ lab, owner } satisfies SlotClaim);
  // start at a random slot: parallel labs rarely race for the same one
  const first = Math.floor(Math.random() * SLOTS);
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < SLOTS; i++) {
      const slot = (first + i) % SLOTS;
      const path = join(slotsDir(), String(slot));
      if (await writeNew(path, text)) return slot;
      const claim = await readJson<SlotClaim>(path);
      if (pass === 1 && claim && !ownerAlive(claim.owner)) {
        await reclaim(path);
        if (await writeNew(path, text)) return slot;
      }
    }
  }
  throw new LabError(`all ${SLOTS} lab port slots are in use (${slotsDir()})`, 'wait for other labs to end, or run: rstlab cleanup');
}

/** Release a slot if it is still this lab's. */
async function releaseSlot(slot: number, lab: string): Promise<void> {
  const path = join(slotsDir(), String(slot));
  const claim = await readJson<SlotClaim>(path);
  if (claim?.lab === lab) await unlink(path).catch(() => undefined);
}

export const recordPath = (id: string): string => join(labsDir(), `${id}.json`);

/**
 * Claim a new lab: its port slot, then its record. Call before making anything of the lab;
 * call forget() after all of it is gone.
 */
export async function claimLab(id: string, backend: string, owner: Owner = currentOwner()): Promise<LabRecord> {
  const slot = await claimSlot(id, owner);
  const record: LabRecord = { id, backend, owner, slot, ports: rangeOf(slot), created: Date.now() };
  try {
    await mkdir(labsDir(), { recursive: true });
    if (!(await writeNew(recordPath(id), JSON.stringify(record)))) throw new LabError(`lab id ${id} is already in use`);
  } catch (e) {
    await releaseSlot(slot, id);
    throw e;
  }
  return record;
}

/** Remove a lab's record and free its slot: the last thing done when a lab is gone. */
export async function forgetLab(record: Pick<LabRecord, 'id' | 'slot'>): Promise<void> {
  await unlink(recordPath(record.id)).catch(() => undefined);
  await releaseSlot(record.slot, record.id);
}

export async function readLabRecord(id: string): Promise<LabRecord | undefined> {
  return readJson<LabRecord>(recordPath(id));
}

export async function listLabRecords(): Promise<LabRecord[]> {
  let names: string[] = [];
  try {
    names = (await readdir(labsDir())).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  const records = await Promise.all(names.map((n) => readLabRecord(n.slice(0, -'.json'.length))));
  return records.filter((r): r is LabRecord => r !== undefined);
}

/** Slot files whose owner is gone and whose lab has no record (a run killed between the two). */
export async function staleSlots(): Promise<string[]> {
  let names: string[] = [];
  try {
    names = (await readdir(slotsDir())).filter((n) => /^\d+$/.test(n));
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names) {
    const claim = await readJson<SlotClaim>(join(slotsDir(), n));
    if (claim && !ownerAlive(claim.owner) && !(await readLabRecord(claim.lab))) out.push(n);
  }
  return out;
}

export async function removeSlot(name: string, force = false): Promise<void> {
  const path = join(slotsDir(), name);
  if (force) return unlink(path).catch(() => undefined);
  await reclaim(path);
}

/** All slot files (for cleanup --force). */
export async function allSlots(): Promise<string[]> {
  try {
    return (await readdir(slotsDir())).filter((n) => /^\d+$/.test(n));
  } catch {
    return [];
  }
}

/** The owner as labels on a Docker container (strings, as Docker wants them). */
export const OWNER_LABELS = { pid: 'rstlab.owner.pid', startTime: 'rstlab.owner.start', boot: 'rstlab.owner.boot', kept: 'rstlab.kept' } as const;

export function ownerLabels(o: Owner): Record<string, string> {
  return { [OWNER_LABELS.pid]: String(o.pid), [OWNER_LABELS.startTime]: String(o.startTime), [OWNER_LABELS.boot]: o.boot, [OWNER_LABELS.kept]: String(o.kept) };
}

export function ownerFromLabels(labels: Record<string, string> | undefined): Owner | undefined {
  const pid = Number(labels?.[OWNER_LABELS.pid]);
  const startTime = Number(labels?.[OWNER_LABELS.startTime]);
  if (!labels || !Number.isInteger(pid) || !Number.isInteger(startTime) || pid <= 0) return undefined;
  return { pid, startTime, boot: labels[OWNER_LABELS.boot] ?? '', kept: labels[OWNER_LABELS.kept] === 'true' };
}
