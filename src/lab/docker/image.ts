// The docker backend's lab image: what goes into it, its tag, and building it once.
// The image holds the host's own `node` (process.execPath) and the raw-socket addon npm
// built for it, so agents run on one Node on both backends (see lab/Dockerfile).
import { spawn as spawnChild } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type Docker from 'dockerode';
import { LabError } from '../../errors.js';

/** Marks the images rstlab built (not rstlab.lab: image labels are inherited by containers).
 * lab/Dockerfile sets it too, so that every image a build makes carries it. */
export const IMAGE_LABEL = 'rstlab.image';
/** The Node version an image's node reports (`node -v`), also a label on the image. */
export const NODE_LABEL = 'rstlab.node';
/** The Dockerfile, relative to the project root. */
export const DOCKERFILE = 'lab/Dockerfile';
/** Images are tagged `rstlab-host:<hash of what goes into them>`: rebuilt only when that changes. */
export const IMAGE_REPOSITORY = 'rstlab-host';
/** The newest image rstlab built, for docker-compose.yml (which cannot stage the host's node). */
export const LATEST_IMAGE = `${IMAGE_REPOSITORY}:latest`;
/** The usual base image, and the one build-base-image.sh makes when no registry can be reached. */
export const REGISTRY_BASE_IMAGE = 'debian:bookworm-slim';
export const LOCAL_BASE_IMAGE = 'rstlab-base:bookworm';

/** The build context rstlab stages: each file's place in it, and where it comes from
 * (relative to the project root, or absolute for the host's node). Never a source of the
 * addon: the image gets the very addon the host's node loads. */
export function imageContext(root: string, node: string = process.execPath): { into: string; from: string }[] {
  const rs = (f: string) => ({ into: `node_modules/raw-socket/${f}`, from: join(root, 'node_modules/raw-socket', f) });
  return [
    { into: 'Dockerfile', from: join(root, DOCKERFILE) },
    { into: 'package.json', from: join(root, 'lab/package.json') },
    { into: 'node', from: node },
    rs('package.json'), rs('index.js'), rs('build/Release/raw.node'),
  ];
}

/**
 * A short hash of everything that goes into the image: every staged file's place and
 * content, except the node binary (100 MB, read on every run otherwise), which counts by
 * its version, architecture, size and modification time: a changed node rebuilds the image.
 */
export async function imageHash(root: string, node: string = process.execPath): Promise<string> {
  const h = createHash('sha256');
  for (const { into, from } of imageContext(root, node)) {
    h.update(`${into}\0`);
    if (into === 'node') {
      const s = await stat(from);
      h.update(`${process.version} ${process.arch} ${s.size} ${s.mtimeMs}`);
    } else {
      h.update(await readFile(from).catch(() => {
        throw new LabError(`${from} is missing: the lab image is made from it`, 'run: npm ci (it builds the raw-socket addon)');
      }));
    }
    h.update('\0');
  }
  return h.digest('hex').slice(0, 12);
}

export interface ImageOptions {
  docker: Docker;
  root: string;
  log: (line: string) => void;
  /** Throws a LabError saying why the daemon cannot be reached. */
  reachDaemon: () => Promise<void>;
  baseImage?: string;
  /** Tag the image here instead of IMAGE_REPOSITORY (tests), and build without Docker's cache. */
  repository?: string;
  noCache?: boolean;
}

/** The lab image's tag, built when missing. */
export async function ensureImage(o: ImageOptions): Promise<string> {
  await o.reachDaemon();
  const repository = o.repository ?? IMAGE_REPOSITORY;
  const tag = `${repository}:${await imageHash(o.root)}`;
  if (await imageExists(o.docker, tag)) return tag;
  const started = Date.now();
  const base = o.baseImage ?? (await findBaseImage(o));
  o.log(`rstlab: building the lab image ${tag} on ${base} with node ${process.version} (first use; reused after)`);
  const context = await mkdtemp(join(tmpdir(), 'rstlab-image-'));
  const tail: string[] = [];
  let lastLog = Date.now();
  try {
    const files = imageContext(o.root);
    for (const { into, from } of files) {
      await mkdir(dirname(join(context, into)), { recursive: true });
      await copyFile(from, join(context, into));
    }
    const stream = await o.docker.buildImage(
      { context, src: files.map((f) => f.into) },
      {
        t: tag, buildargs: { BASE: base }, labels: { [IMAGE_LABEL]: 'host', [NODE_LABEL]: process.version },
        // No intermediate container is kept, failed step or not.
        rm: true, forcerm: true, nocache: o.noCache ?? false,
      },
    );
    await new Promise<void>((resolve, reject) => {
      o.docker.modem.followProgress(
        stream,
        (err: Error | null) => (err ? reject(err) : resolve()),
        (event: { stream?: string; error?: string; errorDetail?: { message?: string } }) => {
          if (event.error) return reject(new Error(event.errorDetail?.message ?? event.error));
          for (const line of (event.stream ?? '').replace(/\x1b\[[0-9;]*m/g, '').split('\n')) {
            if (!line.trim()) continue;
            remember(tail, line);
            // One line per step; inside a long step (apt), its latest output every 20 s.
            if (/^Step \d+\/\d+ : /.test(line) || Date.now() - lastLog > 20_000) {
              o.log(`rstlab:   ${/^Step /.test(line) ? '' : '  '}${oneLine(line)}`);
              lastLog = Date.now();
            }
          }
        },
      );
    });
  } catch (e) {
    if (e instanceof LabError) throw e;
    throw new LabError(`building the lab image failed: ${messageOf(e)}\n${tail.join('\n')}`, 'fix lab/Dockerfile, or check that Debian\'s mirror is reachable');
  } finally {
    await rm(context, { recursive: true, force: true });
  }
  if (repository === IMAGE_REPOSITORY) await o.docker.getImage(tag).tag({ repo: IMAGE_REPOSITORY, tag: 'latest' });
  o.log(`rstlab: lab image ${tag} built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return tag;
}

/** The registry's bookworm-slim where it can be had; else a base made from Debian packages. */
async function findBaseImage(o: ImageOptions): Promise<string> {
  if (await imageExists(o.docker, REGISTRY_BASE_IMAGE)) return REGISTRY_BASE_IMAGE;
  try {
    const stream = await o.docker.pull(REGISTRY_BASE_IMAGE);
    await new Promise<void>((resolve, reject) => o.docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())));
    if (await imageExists(o.docker, REGISTRY_BASE_IMAGE)) return REGISTRY_BASE_IMAGE;
  } catch {
    // no registry here: make the base from Debian packages below
  }
  if (await imageExists(o.docker, LOCAL_BASE_IMAGE)) return LOCAL_BASE_IMAGE;
  o.log(`rstlab: ${REGISTRY_BASE_IMAGE} cannot be pulled; building ${LOCAL_BASE_IMAGE} with debootstrap (a few minutes, once)`);
  await runSummarized('sh', [join(o.root, 'lab/build-base-image.sh'), LOCAL_BASE_IMAGE], o.log).catch((e: unknown) => {
    throw new LabError(`building the base image failed: ${messageOf(e)}`, 'apt-get install debootstrap, check that Debian\'s mirror is reachable, or set a base image that exists');
  });
  return LOCAL_BASE_IMAGE;
}

export async function imageExists(docker: Docker, name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch (e) {
    if (statusOf(e) === 404) return false;
    throw e;
  }
}

/**
 * Run a long host command, showing one line per step: debootstrap prints a line per
 * package ("I: Retrieving libc6 2.36", "I: Unpacking libc6..."); only a change of verb is shown.
 */
async function runSummarized(cmd: string, args: string[], log: (line: string) => void): Promise<void> {
  const child = spawnChild(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  let lastVerb = '';
  const onLine = (line: string) => {
    remember(tail, line);
    const m = /^(?:I: )?(\S+)/.exec(line);
    const verb = m?.[1] ?? '';
    if (line.startsWith('W: ') || line.startsWith('E: ') || verb !== lastVerb) log(`rstlab:   ${line}`);
    lastVerb = verb;
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  createInterface({ input: child.stderr }).on('line', onLine);
  const code = await new Promise<number | null>((resolve) => {
    child.once('error', () => resolve(127));
    child.once('close', resolve);
  });
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${code}\n${tail.join('\n')}`);
}

/** A build step as one short line (a RUN with a long package list would fill the screen). */
function oneLine(line: string): string {
  const s = line.replace(/\s+/g, ' ').trim();
  return s.length > 100 ? `${s.slice(0, 99)}…` : s;
}

function remember(tail: string[], line: string): void {
  tail.push(line.replace(/\x1b\[[0-9;]*m/g, ''));
  if (tail.length > 30) tail.shift();
}

/** The HTTP status of a Docker API error. */
export function statusOf(e: unknown): number | undefined {
  return (e as { statusCode?: number }).statusCode;
}

/** A Docker API error's message without dockerode's "(HTTP code 404) ... -" prefix. */
export function messageOf(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.replace(/^\(HTTP code \d+\)[^-]*- /, '').trim();
}
