// The end of a capture: tcpdump is stopped only once it has handled every packet the kernel
// handed it (its count and the kernel's agree on SIGUSR1). A stand-in for tcpdump that
// catches up only after a few asks shows the wait; one whose counts never agree shows
// the bound.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCapture } from '../../src/capture/capture.js';
import type { Lab } from '../../src/lab/backend.js';
import { start } from '../../src/lab/process.js';

/** A tcpdump that is `behind` packets behind the kernel, catching up by one at each SIGUSR1
 * (never, with behind < 0), and writes how many times it was asked when SIGINT ends it. */
const FAKE = `
let behind = Number(process.argv[process.argv.length - 1]);
let asked = 0;
process.on('SIGUSR1', () => {
  asked++;
  const received = 10;
  const captured = behind < 0 ? 5 : received - behind;
  if (behind > 0) behind--;
  process.stderr.write('tcpdump: ' + captured + ' packets captured, ' + received + ' packets received by filter, 0 packets dropped by kernel\\n');
});
process.on('SIGINT', () => { process.stdout.write('asked ' + asked); process.exit(0); });
setInterval(() => {}, 1000);
// as tcpdump does: its signal handlers are in place before it says it is listening
process.stderr.write('tcpdump: listening on eth0\\n');
`;

function fakeLab(behind: number): Lab {
  return { spawn: () => start(process.execPath, ['-e', FAKE, '--', String(behind)], process.env) } as unknown as Lab;
}

describe('a capture drains before it stops', function () {
  this.timeout(10_000);
  let tmp: string;
  before(() => (tmp = mkdtempSync(join(tmpdir(), 'rstlab-drain-'))));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('asks tcpdump until its count meets the kernel\'s, then stops it', async () => {
    const file = join(tmp, 'behind.pcap');
    const capture = await startCapture(fakeLab(3), 'client', file);
    await capture.drain();
    await capture.stop();
    // three asks while behind (3, 2, 1), the fourth finds it caught up
    expect(readFileSync(file, 'utf8')).to.equal('asked 4');
  });

  it('a capture already caught up is asked once', async () => {
    const file = join(tmp, 'caught-up.pcap');
    const capture = await startCapture(fakeLab(0), 'client', file);
    await capture.drain();
    await capture.stop();
    expect(readFileSync(file, 'utf8')).to.equal('asked 1');
  });

  it('gives up after its bound where the counts never agree', async () => {
    const file = join(tmp, 'never.pcap');
    const capture = await startCapture(fakeLab(-1), 'client', file);
    const t = Date.now();
    await capture.drain();
    expect(Date.now() - t).to.be.within(1_500, 3_000);
    await capture.stop();
  });
});
