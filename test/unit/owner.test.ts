// Lab records and port slots, in a state folder of this test's own (RSTLAB_STATE_DIR).
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as owner from '../../src/lab/owner.js';

const dir = mkdtempSync(join(tmpdir(), 'rstlab-owner-'));

/** An owner that is gone: a process that has ended. */
function deadOwner(): owner.Owner {
  const r = spawnSync('sh', ['-c', 'cut -d" " -f22 /proc/$$/stat; echo $$'], { encoding: 'utf8' });
  const [startTime, pid] = r.stdout.trim().split('\n').map(Number);
  return { ...owner.currentOwner(), pid: pid!, startTime: startTime! };
}

describe('lab owner records and port slots', () => {
  // never the machine's own /run/rstlab: other labs' slots are there
  const before_ = process.env.RSTLAB_STATE_DIR;
  before(() => {
    process.env.RSTLAB_STATE_DIR = dir;
    expect(owner.stateDir()).to.equal(dir);
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    if (before_ === undefined) delete process.env.RSTLAB_STATE_DIR;
    else process.env.RSTLAB_STATE_DIR = before_;
  });

  it('reads a process\'s start time (field 22 of /proc/PID/stat, after a comm with spaces)', () => {
    const t = owner.startTimeOf(process.pid);
    expect(t).to.be.a('number').and.greaterThan(0);
    expect(owner.ownerAlive(owner.currentOwner())).to.equal(`owner pid ${process.pid} is running`);
  });

  it('an owner whose pid ended, or whose pid now has another start time, is gone; a kept lab is not', () => {
    expect(owner.ownerAlive(deadOwner())).to.equal(undefined);
    const me = owner.currentOwner();
    expect(owner.ownerAlive({ ...me, startTime: me.startTime - 1 })).to.equal(undefined); // pid reused
    expect(owner.ownerAlive({ ...me, boot: 'another-boot' })).to.equal(undefined);
    expect(owner.ownerAlive({ ...deadOwner(), kept: true })).to.match(/kept lab/);
  });

  it('gives labs disjoint port ranges, writes the record before anything and forgets it after', async () => {
    const records = await Promise.all(['a1', 'a2', 'a3', 'a4'].map((id) => owner.claimLab(id, 'netns')));
    const slots = new Set(records.map((r) => r.slot));
    expect(slots.size).to.equal(4);
    for (const r of records) {
      expect(r.ports.max - r.ports.min + 1).to.equal(owner.SLOT_SIZE);
      expect(r.ports.min % 2, 'an even first port').to.equal(0);
      expect(JSON.parse(readFileSync(owner.recordPath(r.id), 'utf8'))).to.deep.include({ id: r.id, slot: r.slot });
    }
    await Promise.all(records.map((r) => owner.forgetLab(r)));
    expect(readdirSync(join(dir, 'labs'))).to.deep.equal([]);
    expect(readdirSync(join(dir, 'slots'))).to.deep.equal([]);
  });

  it('refuses a lab id already in use, and keeps no slot for it', async () => {
    const r = await owner.claimLab('dup', 'netns');
    let err: unknown;
    await owner.claimLab('dup', 'netns').catch((e: unknown) => (err = e));
    expect((err as Error).message).to.match(/already in use/);
    expect(readdirSync(join(dir, 'slots'))).to.have.length(1);
    await owner.forgetLab(r);
  });

  it('takes over a slot whose owner is gone only when every free slot is taken, and never a live one', async () => {
    const dead = deadOwner();
    const mine: owner.LabRecord[] = [];
    // every slot held by a dead owner but one, which a live lab holds
    for (let i = 0; i < 40; i++) writeFileSync(join(dir, 'slots', String(i)), JSON.stringify({ lab: `dead${i}`, owner: dead }));
    writeFileSync(join(dir, 'slots', '7'), JSON.stringify({ lab: 'live', owner: owner.currentOwner() }));
    mine.push(await owner.claimLab('new1', 'netns'));
    expect(mine[0]!.slot).to.not.equal(7);
    expect(JSON.parse(readFileSync(join(dir, 'slots', '7'), 'utf8'))).to.include({ lab: 'live' });
    expect(await owner.staleSlots()).to.have.length(38);
    for (const s of await owner.staleSlots()) await owner.removeSlot(s);
    expect(readdirSync(join(dir, 'slots')).sort()).to.deep.equal([String(mine[0]!.slot), '7'].sort());
    await owner.forgetLab(mine[0]!);
    await owner.removeSlot('7', true);
  });

  it('says so when all slots are held by live owners', async () => {
    const held = await Promise.all(Array.from({ length: 40 }, (_, i) => owner.claimLab(`full${i}`, 'netns')));
    let err: unknown;
    await owner.claimLab('one-more', 'netns').catch((e: unknown) => (err = e));
    expect((err as Error).message).to.match(/all 40 lab port slots are in use/);
    await Promise.all(held.map((r) => owner.forgetLab(r)));
  });

  it('carries the owner in Docker labels and back', () => {
    const me = owner.currentOwner();
    expect(owner.ownerFromLabels(owner.ownerLabels(me))).to.deep.equal(me);
    expect(owner.ownerFromLabels({ 'rstlab.lab': 'x' })).to.equal(undefined);
  });
});
