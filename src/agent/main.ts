#!/usr/bin/env node
// The agent: one per lab host, started inside the host (a network namespace or a
// container) and driven by the runner over stdio with JSON lines (see protocol.ts).
// It imports only Node built-ins and, lazily, raw-socket: it runs on the lab image's Node too.
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import net from 'node:net';
import type { AgentEvent, AgentMessage, Reply, Request, RequestWithId } from './protocol.js';
import { listenerSockets, readCounters, readSockets } from './procfs.js';
import { forgeSegment } from './forge.js';

const sockets = new Map<string, net.Socket>();
const listeners = new Map<string, { close(): Promise<void> }>();

function now(): number {
  return performance.timeOrigin + performance.now();
}

function emit(msg: AgentMessage): void {
  process.stdout.write(JSON.stringify(msg) + '\n');
}

/** Report what the application sees on a socket, the way an application would see it. */
function watch(conn: string, socket: net.Socket): void {
  sockets.set(conn, socket);
  socket.on('data', (d: Buffer) => emit({ conn, event: 'data', bytes: d.length, t: now() }));
  socket.on('end', () => emit({ conn, event: 'end', t: now() }));
  socket.on('error', (e: NodeJS.ErrnoException) => emit({ conn, event: 'error', code: e.code ?? e.message, t: now() }));
  socket.on('close', () => emit({ conn, event: 'closed', t: now() }));
}

function listenAccepting(r: Extract<Request, { cmd: 'listen' }>): Promise<void> {
  let n = 0;
  const server = net.createServer({ pauseOnConnect: !r.read }, (socket) => {
    const conn = `${r.listener}#${++n}`;
    emit({ conn, listener: r.listener, event: 'accepted', localPort: socket.localPort, remotePort: socket.remotePort, t: now() });
    watch(conn, socket);
  });
  listeners.set(r.listener, {
    close: () => new Promise((res) => server.close(() => res())),
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: r.port, backlog: r.backlog }, () => resolve());
  });
}

// A listener that never accepts: Node's accept runs on the event loop, so the socket
// listens in a worker thread whose loop is then blocked (Atomics.wait). Connections
// complete the handshake in the kernel and stay in the accept queue (backlog + 1 of them).
const NEVER_ACCEPT = `
const { workerData, parentPort } = require('node:worker_threads');
const net = require('node:net');
const server = net.createServer(() => {});
server.on('error', (e) => parentPort.postMessage({ error: e.message }));
server.listen({ port: workerData.port, backlog: workerData.backlog }, () => {
  parentPort.postMessage({ listening: true });
  const flag = new Int32Array(workerData.flag);
  Atomics.wait(flag, 0, 0);
  server.close();
});
`;

function listenNeverAccepting(r: Extract<Request, { cmd: 'listen' }>): Promise<void> {
  const flag = new SharedArrayBuffer(4);
  const worker = new Worker(NEVER_ACCEPT, { eval: true, workerData: { port: r.port, backlog: r.backlog, flag } });
  listeners.set(r.listener, {
    close: async () => {
      Atomics.store(new Int32Array(flag), 0, 1);
      Atomics.notify(new Int32Array(flag), 0);
      await worker.terminate();
    },
  });
  return new Promise((resolve, reject) => {
    worker.once('message', (m: { listening?: boolean; error?: string }) => (m.listening ? resolve() : reject(new Error(m.error))));
    worker.once('error', reject);
  });
}

function connect(r: Extract<Request, { cmd: 'connect' }>): Promise<Partial<Extract<Reply, { ok: true }>>> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: r.address, port: r.port, localPort: r.localPort });
    watch(r.conn, socket);
    // The kernel picks the local port at connect(); read it while the attempt is under way,
    // since a refused connect closes the handle before 'error' (the RST's destination port).
    let localPort = r.localPort;
    setImmediate(() => (localPort = (socket.address() as net.AddressInfo).port ?? localPort));
    if (r.keepAliveMs !== undefined) socket.setKeepAlive(true, r.keepAliveMs);
    socket.once('connect', () => {
      emit({ conn: r.conn, event: 'connected', localPort: socket.localPort, remotePort: socket.remotePort, t: now() });
      if (r.wait) resolve({ localPort: socket.localPort });
    });
    // a refused connect still has a local port worth knowing (the RST's destination)
    socket.once('error', () => r.wait && resolve({ localPort }));
    if (!r.wait) resolve({});
  });
}

function socketOf(conn: string): net.Socket {
  const s = sockets.get(conn);
  if (!s) throw new Error(`no socket ${conn} on this host`);
  return s;
}

async function handle(r: Request): Promise<Partial<Extract<Reply, { ok: true }>>> {
  switch (r.cmd) {
    case 'sysctl':
      // /proc/sys/net belongs to the network namespace of the process that opens it:
      // written from inside the host, it changes that host only.
      writeFileSync(`/proc/sys/${r.name.replaceAll('.', '/')}`, String(r.value));
      return {};
    case 'counters':
      return { counters: readCounters() };
    case 'snapshot':
      return { sockets: readSockets() };
    case 'listen':
      await (r.accept ? listenAccepting(r) : listenNeverAccepting(r));
      return { listenerSockets: listenerSockets(r.port) };
    case 'stopListener': {
      const l = listeners.get(r.listener);
      if (!l) throw new Error(`no listener ${r.listener}`);
      listeners.delete(r.listener);
      await l.close();
      return {};
    }
    case 'connect':
      return connect(r);
    case 'send':
      socketOf(r.conn).write(Buffer.alloc(r.bytes, 'x'));
      return {};
    case 'close': {
      const s = socketOf(r.conn);
      if (r.how === 'end') s.end();
      else if (r.how === 'destroy') s.destroy();
      else s.resetAndDestroy(); // SO_LINGER 0 then close(): RFC 9293 §3.10.5 ABORT
      return {};
    }
    case 'resume':
      socketOf(r.conn).resume();
      return {};
    case 'forge':
      await forgeSegment(r);
      return {};
    default: {
      const never: never = r;
      throw new Error(`unknown command ${JSON.stringify(never)}`);
    }
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let req: RequestWithId;
  try {
    req = JSON.parse(line) as RequestWithId;
  } catch {
    return;
  }
  handle(req).then(
    (result) => emit({ id: req.id, ok: true, ...result }),
    (e: Error) => emit({ id: req.id, ok: false, error: e.message }),
  );
});
// The runner closing our stdin is the end of the run.
rl.on('close', () => process.exit(0));
process.on('uncaughtException', (e) => {
  process.stderr.write(`agent: ${e.stack ?? e.message}\n`);
});
emit({ ready: true });
