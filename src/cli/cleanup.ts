// rstlab cleanup: remove what killed runs left behind, and only that. A lab is removed when
// its owner (lab/owner.ts) is gone; everything else is left alone, with the reason said.
// Here, not in lab/, because tracing instances are the capture's (lab/ does not import capture/).
import { removeTraceInstance, traceInstances } from '../capture/kernel-resets.js';
import { BACKENDS, type Backend, type FoundLab } from '../lab/backend.js';
import { backendByName } from '../lab/backends.js';
import { allSlots, forgetLab, listLabRecords, ownerAlive, readLabRecord, recordPath, removeSlot, staleSlots, type Owner } from '../lab/owner.js';

export interface CleanupResult {
  removed: string[];
  /** what was left alone, and why */
  left: string[];
}

/** Why a lab must be left alone, or undefined when its owner is gone. A lab without an owner
 * record was not made by this rstlab (which writes the record before it makes anything):
 * it is left to its maker, or to --force. */
function keepReason(owner: Owner | undefined): string | undefined {
  if (!owner) return 'it has no owner record (made by another rstlab version?); rstlab cleanup --force removes it';
  return ownerAlive(owner);
}

/**
 * Remove the labs (namespaces, containers), tracing instances, records and port slots whose
 * owner is gone. With force, everything with the rstlab prefix or label, whoever owns it.
 */
export async function cleanupLabs(force = false): Promise<CleanupResult> {
  const result: CleanupResult = { removed: [], left: [] };
  const backends = new Map<string, Backend>();
  const found: FoundLab[] = [];
  for (const name of BACKENDS) {
    try {
      const backend = await backendByName(name);
      found.push(...(await backend.labs()));
      backends.set(name, backend);
    } catch (e) {
      // no Docker here, or its daemon is not running: nothing of ours can be there either
      if (name === 'netns') throw e;
    }
  }

  const handled = new Set<string>();
  for (const lab of found) {
    handled.add(lab.id);
    const why = force ? undefined : keepReason(lab.owner);
    if (why) {
      result.left.push(`${lab.id} (${lab.backend}: ${lab.names.join(', ')}): ${why}`);
      continue;
    }
    result.removed.push(...(await removeLab(backends.get(lab.backend)!, lab)));
  }

  // A tracing instance is made after its lab's record and removed before the lab comes down.
  for (const id of await traceInstances()) {
    if (handled.has(id)) continue;
    handled.add(id);
    const why = force ? undefined : keepReason((await readLabRecord(id))?.owner);
    if (why) result.left.push(`tracing instance rstlab-${id}: ${why}`);
    else result.removed.push(...(await removeTraceInstance(id)), ...(await forget(id)));
  }

  // Records of labs already gone (a run killed while its lab was coming up or going down);
  // a live owner's record without a lab is a lab being built or taken down: not a leftover.
  for (const r of await listLabRecords()) {
    if (!handled.has(r.id) && (force || !ownerAlive(r.owner))) result.removed.push(...(await forget(r.id)));
  }
  for (const slot of force ? await allSlots() : await staleSlots()) {
    await removeSlot(slot, force);
    result.removed.push(`port slot ${slot}`);
  }
  return result;
}

/** Remove one lab, whoever owns it: its namespaces or containers, its tracing instance, its record and slot. */
export async function removeLab(backend: Backend, lab: FoundLab): Promise<string[]> {
  return [...(await backend.removeLab(lab)), ...(await removeTraceInstance(lab.id)), ...(await forget(lab.id))];
}

async function forget(id: string): Promise<string[]> {
  const record = await readLabRecord(id);
  if (!record) return [];
  await forgetLab(record);
  return [`state file ${recordPath(id)}`];
}
