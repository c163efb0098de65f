// The teaching outputs of real runs, one lab run per scenario variant (one `run --all
// --html`), each run checked twice from outside rstlab's own code:
// - report.html in Debian's headless chromium: one arrow per packet of the run (every
//   packet each capture point's pcap holds is a dot on exactly one arrow, counted against
//   tshark's reading of that pcap), each RST arrow marked and labelled with its sender, no
//   console error, no request beyond the file itself; a screenshot lands in the run folder.
// - all.pcapng in tshark: its interfaces are the capture points (each holding exactly that
//   point's frames), `-Y frame.comment` lists exactly the run's RSTs, each copy commented
//   with its number, sender and scenario, and the ladder's relative seq/ack are Wireshark's.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeCapture } from '../../src/capture/pcap.js';
import { seqNumbers } from '../../src/report/relative-seq.js';
import { TCP } from '../../src/vocabulary.js';
import { launchBrowser, type Browser } from '../browser.js';
import { fixture, ROOT, rstlab } from '../helpers.js';

const POINTS = ['client', 'firewall-a', 'firewall-b', 'server'] as const;

interface Report {
  scenario: string;
  variant: string;
  labId: string;
  passed: boolean;
  rsts: { id: number; from: string; seenAt: Record<string, unknown> }[];
}

function tshark(args: string[]): string[] {
  return execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean);
}

/** The scenario variants a `run --all` runs: every file, cause and each variant. */
function expectedRuns(): string[] {
  const out: string[] = [];
  for (const f of readdirSync(`${ROOT}scenarios`).filter((n) => n.endsWith('.yaml')).sort()) {
    const text = readFileSync(`${ROOT}scenarios/${f}`, 'utf8');
    const name = f.replace(/\.yaml$/, '');
    out.push(`${name} cause`);
    const variants = /^variants:\n((?:[ #].*\n?)*)/m.exec(text)?.[1] ?? '';
    for (const m of variants.matchAll(/^ {2}([a-z][a-z0-9_-]*):/gm)) out.push(`${name} ${m[1]}`);
  }
  return [...out, 'icmp-reject cause'];
}

describe('teaching outputs of every scenario: report.html in chromium, all.pcapng in tshark', function () {
  this.timeout(600_000);
  const runsDir = mkdtempSync(join(tmpdir(), 'rstlab-teaching-'));
  const runs: { dir: string; report: Report }[] = [];
  let browser: Browser;

  before(async function () {
    // every scenario, and beside it a fixture whose firewall answers with ICMP instead of a RST
    const [r, icmp] = await Promise.all([
      rstlab('run', '--all', '--html', '--jobs', '3', '--runs-dir', runsDir),
      rstlab('run', fixture('scenarios/icmp-reject.yaml'), '--html', '--runs-dir', runsDir),
    ]);
    expect(r.code, r.stderr + r.stdout).to.equal(0);
    expect(icmp.code, icmp.stderr + icmp.stdout).to.equal(0);
    for (const d of readdirSync(runsDir)) {
      const dir = join(runsDir, d);
      if (existsSync(join(dir, 'report.json'))) runs.push({ dir, report: JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as Report });
    }
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    // the screenshots stay for a person to look at when asked to (RSTLAB_KEEP_RUNS)
    if (!process.env.RSTLAB_KEEP_RUNS) rmSync(runsDir, { recursive: true, force: true });
  });

  it('ran every scenario variant once (and the ICMP fixture), each with report.html and all.pcapng, and left no lab behind', () => {
    expect(runs.map((r) => `${r.report.scenario} ${r.report.variant}`).sort()).to.deep.equal(expectedRuns().sort());
    const netns = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
    for (const { dir, report } of runs) {
      expect(existsSync(join(dir, 'report.html')), dir).to.equal(true);
      expect(existsSync(join(dir, 'all.pcapng')), dir).to.equal(true);
      expect(netns.filter((n) => n.includes(report.labId)), report.labId).to.deep.equal([]);
    }
    expect(existsSync(join(runsDir, 'index.html'))).to.equal(true);
  });

  it('the index page links every run’s report, with no console error and no request', async () => {
    const opened = await browser.open(join(runsDir, 'index.html'));
    const hrefs = await opened.page.$$eval('a', (as) => as.map((a) => a.getAttribute('href')));
    expect(hrefs.length).to.equal(runs.length - 1); // all but the fixture's
    for (const h of hrefs) expect(existsSync(join(runsDir, h!)), h!).to.equal(true);
    expect(opened.errors).to.deep.equal([]);
    expect(opened.requests.every((u) => u.endsWith('/index.html'))).to.equal(true);
    await opened.close();
  });

  for (const want of expectedRuns()) {
    it(`${want}: report.html — one arrow per packet, RSTs marked with their sender, no error, no request`, async () => {
      const run = runs.find((r) => `${r.report.scenario} ${r.report.variant}` === want);
      expect(run, want).to.not.equal(undefined);
      const { dir, report } = run!;
      const opened = await browser.open(join(dir, 'report.html'));
      const arrows = await opened.page.$$eval('svg .arrow', (gs) =>
        gs.map((g) => ({
          seen: (g.getAttribute('data-seen') ?? '').split(' ').filter(Boolean),
          rst: g.getAttribute('data-rst'),
          sender: g.getAttribute('data-sender'),
          red: g.classList.contains('rst'),
          icmp: g.classList.contains('icmp'),
          rstLabel: g.querySelector('.rst-label')?.textContent ?? null,
          box: (() => {
            const b = g.getBoundingClientRect();
            return { w: b.width, h: b.height };
          })(),
        })),
      );
      // every packet of each capture point is on exactly one arrow (tshark counts them)
      // (ICMP errors quote a TCP header, which tshark dissects as tcp too: counted apart; ICMPv6
      // neighbour discovery quotes none and is no arrow)
      for (const point of POINTS) {
        const frames = tshark(['-r', join(dir, `${point}.pcap`), '-Y', 'tcp && !icmp && !icmpv6', '-T', 'fields', '-e', 'frame.number']).length;
        expect(arrows.filter((a) => !a.icmp && a.seen.includes(point)).length, `${want}: arrows seen at ${point}`).to.equal(frames);
        const icmp = tshark(['-r', join(dir, `${point}.pcap`), '-Y', '(icmp || icmpv6) && tcp', '-T', 'fields', '-e', 'frame.number']).length;
        expect(arrows.filter((a) => a.icmp && a.seen.includes(point)).length, `${want}: ICMP arrows seen at ${point}`).to.equal(icmp);
      }
      // each arrow is drawn (has a size on the page)
      for (const a of arrows) expect(a.box.w, want).to.be.greaterThan(10);
      if (want === 'icmp-reject cause') expect(arrows.filter((a) => a.icmp).length, 'the ICMP error is drawn').to.be.greaterThan(0);
      // the RSTs: one red arrow each, labelled with its sender
      const rstArrows = arrows.filter((a) => a.rst !== null);
      expect(rstArrows.length, `${want}: RST arrows`).to.equal(report.rsts.length);
      for (const s of report.rsts) {
        const a = rstArrows.find((x) => x.rst === String(s.id));
        expect(a, `${want}: RST #${s.id}`).to.not.equal(undefined);
        expect(a!.red).to.equal(true);
        expect(a!.sender).to.equal(s.from);
        expect(a!.rstLabel).to.contain(`RST #${s.id} sent by ${s.from}`);
      }
      expect(arrows.filter((a) => a.red).length).to.equal(report.rsts.length);
      // clicking an arrow shows its fields
      if (arrows.length > 0) {
        await opened.page.click('svg .arrow >> nth=0');
        expect(await opened.page.textContent('#detail')).to.contain('seen at');
      }
      expect(opened.errors, `${want}: console errors`).to.deep.equal([]);
      expect(opened.requests, `${want}: requests`).to.deep.equal([opened.page.url()]);
      await opened.page.screenshot({ path: join(dir, 'report.png'), fullPage: true });
      await opened.close();
      expect(existsSync(join(dir, 'report.png'))).to.equal(true);
    });

    it(`${want}: all.pcapng — interfaces are the capture points, frame.comment lists exactly the RSTs, relative seq/ack and windows as Wireshark`, () => {
      const { dir, report } = runs.find((r) => `${r.report.scenario} ${r.report.variant}` === want)!;
      const file = join(dir, 'all.pcapng');
      // every frame of each point, and only those, on the interface named after it
      const ifaces = tshark(['-r', file, '-T', 'fields', '-e', 'frame.interface_name']);
      for (const point of POINTS) {
        const frames = tshark(['-r', join(dir, `${point}.pcap`), '-T', 'fields', '-e', 'frame.number']).length;
        expect(ifaces.filter((n) => n === point).length, `${want}: frames on ${point}`).to.equal(frames);
      }
      expect(ifaces.every((n) => (POINTS as readonly string[]).includes(n))).to.equal(true);
      // comments: on every copy of every RST, and on nothing else
      const commented = tshark(['-r', file, '-Y', 'frame.comment', '-T', 'fields', '-E', 'separator=|', '-e', 'frame.interface_name', '-e', 'tcp.flags.reset', '-e', 'frame.comment']);
      const rstFrames = tshark(['-r', file, '-Y', 'tcp.flags.reset == 1 && !icmp && !icmpv6', '-T', 'fields', '-e', 'frame.number']);
      const copies = report.rsts.reduce((n, s) => n + Object.keys(s.seenAt).length, 0);
      expect(commented.length, `${want}: commented frames`).to.equal(copies);
      expect(rstFrames.length, `${want}: RST frames`).to.equal(copies);
      for (const line of commented) {
        const [iface, reset, comment] = line.split('|');
        expect(reset, line).to.be.oneOf(['1', 'True']);
        const m = /^RST #(\d+) sent by ([a-z]+)/.exec(comment ?? '');
        expect(m, line).to.not.equal(null);
        const s = report.rsts.find((x) => x.id === Number(m![1]));
        expect(s, line).to.not.equal(undefined);
        expect(m![2]).to.equal(s!.from);
        expect(Object.keys(s!.seenAt)).to.include(iface);
        expect(comment).to.match(new RegExp(`\\(${report.scenario}\\)$`));
      }
      // the section header names the scenario
      expect(execFileSync('capinfos', ['-k', file], { encoding: 'utf8' })).to.contain(`rstlab ${report.scenario}`);
      // the ladder's relative seq/ack are the ones Wireshark shows
      const ws = tshark(['-r', file, '-Y', 'tcp && !icmp && !icmpv6', '-T', 'fields', '-E', 'separator=|', '-e', 'tcp.seq', '-e', 'tcp.ack', '-e', 'tcp.window_size']);
      const packets = decodeCapture(readFileSync(file));
      expect(packets.length).to.equal(ws.length);
      const ours = seqNumbers(packets);
      packets.forEach((p, i) => {
        const [seq, ack, win] = ws[i]!.split('|');
        expect(ours[i]!.seq, `${want}: frame ${i + 1} seq`).to.equal(Number(seq));
        expect(ours[i]!.win, `${want}: frame ${i + 1} window`).to.equal(Number(win));
        if (p.flags & TCP.ACK) expect(ours[i]!.ack, `${want}: frame ${i + 1} ack`).to.equal(Number(ack));
      });
    });
  }
});
