// all.pcapng: the run's capture points in one file for Wireshark. Each point is an
// interface named after it (frame.interface_name == "firewall-a"), the frames of all four
// are merged in time order, every copy of each RST carries a packet comment saying which
// RST it is, who sent it and why (frame.comment; Wireshark lists comments in Expert Info),
// and the section header carries the scenario's summary. A mystery run's file names no
// cause: its comments number the RSTs only.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { captureFrames, type CapturedFrame } from '../capture/pcap.js';
import { pcapng, type PcapngInterface, type PcapngPacket } from '../capture/pcapng-write.js';
import type { RunResult } from '../run/runner.js';
import { CAPTURE_INTERFACE, TOPOLOGY, TOPOLOGY6, type CapturePoint } from '../vocabulary.js';
import { rstComment } from './rst-words.js';

export const ALL_PCAPNG = 'all.pcapng';

/** tcpdump's link type on a veth (and so on every capture point of both backends). */
const LINKTYPE_ETHERNET = 1;
/** The snap length the captures use (capture.ts runs tcpdump -s 256). */
const SNAPLEN = 256;

function description(point: CapturePoint): string {
  const { host, iface } = CAPTURE_INTERFACE[point];
  // every lab is dual-stack: both addresses of the interface
  const address = (t: typeof TOPOLOGY | typeof TOPOLOGY6) => (host === 'firewall' ? t.firewall.addresses[iface as 'eth0' | 'eth1'] : t[host].address);
  return `${host} ${iface} (${address(TOPOLOGY)}, ${address(TOPOLOGY6)}), capture point ${point}`;
}

/** The section header's comment: what the run was, or for an exercise only that it is one. */
function sectionComment(r: RunResult, mystery: boolean): string {
  if (mystery) return 'rstlab mystery run: which cause made the RST(s)? (rstlab reveal RUN_DIR tells)';
  const variant = r.plan.variant === 'cause' ? '' : ` (${r.plan.variant})`;
  const verdict = r.verdict.passed ? 'every expectation held' : 'an expectation failed';
  return `rstlab ${r.plan.name}${variant}: ${r.plan.summary}. ${r.verdict.rsts.length} RST(s); ${verdict}. Capture points: ${r.plan.capture.join(', ')}.`;
}

/** The comment of each RST frame of a point, by the frame's packet index in that point's capture. */
function commentsAt(r: RunResult, point: CapturePoint, mystery: boolean): Map<number, string> {
  const m = new Map<number, string>();
  for (const s of r.verdict.rsts) {
    const seen = s.seen[point];
    if (seen) m.set(seen.index, rstComment(s, r.plan.name, mystery));
  }
  return m;
}

/** Build all.pcapng of a run from its per-point pcaps; returns its path. */
export async function writeAllPcapng(r: RunResult, opts: { mystery?: boolean } = {}): Promise<string> {
  const mystery = opts.mystery ?? false;
  const interfaces: PcapngInterface[] = [];
  const packets: (PcapngPacket & { order: number })[] = [];
  for (const point of r.plan.capture) {
    const iface = interfaces.length;
    let frames: CapturedFrame[] = [];
    try {
      frames = captureFrames(await readFile(join(r.dir, `${point}.pcap`)));
    } catch {
      // a point whose capture cannot be read keeps its interface, with no packets
    }
    interfaces.push({ name: point, description: description(point), linkType: frames[0]?.linkType ?? LINKTYPE_ETHERNET, snapLen: SNAPLEN });
    const comments = commentsAt(r, point, mystery);
    let index = 0;
    for (const f of frames) {
      // decodeCapture's packet index counts the frames that hold a segment
      const comment = f.packet ? comments.get(index++) : undefined;
      packets.push({ iface, time: f.time, data: f.data, origLen: f.origLen, order: packets.length, ...(comment ? { comment } : {}) });
    }
  }
  // Time order; at the same microsecond, the order of the points and of each capture.
  packets.sort((a, b) => Math.round(a.time * 1e6) - Math.round(b.time * 1e6) || a.order - b.order);
  const file = join(r.dir, ALL_PCAPNG);
  await writeFile(file, pcapng({ comment: sectionComment(r, mystery), application: 'rstlab' }, interfaces, packets));
  return file;
}
