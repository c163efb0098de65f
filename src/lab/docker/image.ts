// The lab image of the docker backend: what goes into it, its tag (a hash of its inputs,
// so it is rebuilt only when they change), and building it, with a base image pulled from
// a registry or, where none can be reached, made from Debian packages.
import { spawn as spawnChild } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type Docker from 'dockerode';
import { LabError } from '../../errors.js';

/** Marks the images rstlab built (not rstlab.lab: image labels are inherited by containers). */
export const IMAGE_LABEL = 'rstlab.image';

/** The Dockerfile, relative to the project root (the build context, as in docker-compose.yml). */
export const DOCKERFILE = 'lab/Dockerfile';
/** Everything that goes into the image, relative to the project root: the lab files, and the
 * sources of the raw-socket addon and the nan headers it compiles with (never a host build
 * of it: that one is for the host's Node). Also what .dockerignore lets through. */
export const IMAGE_FILES = [
  DOCKERFILE, 'lab/package.json', 'lab/build-base-image.sh',
  'node_modules/raw-socket/package.json', 'node_modules/raw-socket/index.js', 'node_modules/raw-socket/src',
  'node_modules/nan',
] as const;
/** Images are tagged `rstlab-host:<hash of IMAGE_FILES>`: rebuilt only when what goes into them changes. */
export const IMAGE_REPOSITORY = 'rstlab-host';
/** The usual base image, and the one build-base-image.sh makes when no registry can be reached. */
export const REGISTRY_BASE_IMAGE = 'debian:bookworm-slim';
export const LOCAL_BASE_IMAGE = 'rstlab-base:bookworm';

/**
 * The lab image's tag, `rstlab-host:<hash of IMAGE_FILES>`, built when no image has it yet
 * (the Docker daemon must be reachable).
 */
export async function buildImageIfMissing(docker: Docker, root: string, log: (line: string) => void, baseImage?: string): Promise<string> {
  const tag = `${IMAGE_REPOSITORY}:${await imageHash(root)}`;
  if (await imageExists(docker, tag)) return tag;
  const started = Date.now();
  const base = baseImage ?? (await findBaseImage(docker, root, log));
  log(`rstlab: building the lab image ${tag} on ${base} (first use; reused after)`);
  const tail: string[] = [];
  let lastLog = Date.now();
  try {
    const stream = await docker.buildImage(
      { context: root, src: await imageFiles(root) },
      { t: tag, dockerfile: DOCKERFILE, buildargs: { BASE: base }, labels: { [IMAGE_LABEL]: 'host' }, rm: true, forcerm: true },
    );
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(
        stream,
        (err: Error | null) => (err ? reject(err) : resolve()),
        (event: { stream?: string; error?: string; errorDetail?: { message?: string } }) => {
          if (event.error) return reject(new Error(event.errorDetail?.message ?? event.error));
          for (const line of (event.stream ?? '').replace(/\x1b\[[0-9;]*m/g, '').split('\n')) {
            if (!line.trim()) continue;
            remember(tail, line);
            // One line per step; inside a long step (apt, npm), its latest output every 20 s.
            if (/^Step \d+\/\d+ : /.test(line) || Date.now() - lastLog > 20_000) {
              log(`rstlab:   ${/^Step /.test(line) ? '' : '  '}${oneLine(line)}`);
              lastLog = Date.now();
            }
          }
        },
      );
    });
  } catch (e) {
    throw new LabError(`building the lab image failed: ${messageOf(e)}\n${tail.join('\n')}`, 'fix lab/Dockerfile, or check that Debian\'s mirror and the npm registry are reachable');
  }
  log(`rstlab: lab image ${tag} built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return tag;
}

/** The registry's bookworm-slim where it can be had; else a base made from Debian packages. */
async function findBaseImage(docker: Docker, root: string, log: (line: string) => void): Promise<string> {
  if (await imageExists(docker, REGISTRY_BASE_IMAGE)) return REGISTRY_BASE_IMAGE;
  try {
    const stream = await docker.pull(REGISTRY_BASE_IMAGE);
    await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())));
    if (await imageExists(docker, REGISTRY_BASE_IMAGE)) return REGISTRY_BASE_IMAGE;
  } catch {
    // no registry here: make the base from Debian packages below
  }
  if (await imageExists(docker, LOCAL_BASE_IMAGE)) return LOCAL_BASE_IMAGE;
  log(`rstlab: ${REGISTRY_BASE_IMAGE} cannot be pulled; building ${LOCAL_BASE_IMAGE} with debootstrap (a few minutes, once)`);
  await runSummarized('sh', [join(root, 'lab/build-base-image.sh'), LOCAL_BASE_IMAGE], log).catch((e: unknown) => {
    throw new LabError(`building the base image failed: ${messageOf(e)}`, 'apt-get install debootstrap, check that Debian\'s mirror is reachable, or set a base image that exists');
  });
  return LOCAL_BASE_IMAGE;
}

async function imageExists(docker: Docker, name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch (e) {
    if (statusOf(e) === 404) return false;
    throw e;
  }
}

/** Every file that goes into the image, relative to the root (a build context's tar lists files, not folders). */
export async function imageFiles(root: string): Promise<string[]> {
  return (await Promise.all(IMAGE_FILES.map((f) => filesUnder(root, f)))).flat().sort();
}

/** A short hash of everything that goes into the image (every file's path and content). */
export async function imageHash(root: string): Promise<string> {
  const h = createHash('sha256');
  for (const f of await imageFiles(root)) {
    h.update(`${f}\0`);
    h.update(await readFile(join(root, f)));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 12);
}

async function filesUnder(root: string, path: string): Promise<string[]> {
  const s = await stat(join(root, path)).catch(() => undefined);
  if (!s) return [];
  if (!s.isDirectory()) return [path];
  const entries = await readdir(join(root, path));
  return (await Promise.all(entries.map((e) => filesUnder(root, join(path, e))))).flat();
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

export function statusOf(e: unknown): number | undefined {
  return (e as { statusCode?: number }).statusCode;
}

export function messageOf(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.replace(/^\(HTTP code \d+\)[^-]*- /, '').trim();
}
