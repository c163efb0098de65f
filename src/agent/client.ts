// The runner's side of an agent: requests with ids, replies matched back to them,
// application events passed to a listener.
import { createInterface } from 'node:readline';
import type { Lab, LabProcess } from '../lab/backend.js';
import type { HostName } from '../vocabulary.js';
import type { AgentEvent, AgentMessage, Reply, Request } from './protocol.js';

export class AgentClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Extract<Reply, { ok: true }>) => void; reject: (e: Error) => void }>();
  private stderr = '';
  readonly ready: Promise<void>;

  private constructor(readonly host: HostName, private readonly proc: LabProcess, onEvent: (host: HostName, e: AgentEvent) => void) {
    let markReady!: () => void;
    this.ready = new Promise((resolve) => (markReady = resolve));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (this.stderr = (this.stderr + d).slice(-4000)));
    proc.stdin.on('error', () => undefined);
    createInterface({ input: proc.stdout }).on('line', (line) => {
      const msg = JSON.parse(line) as AgentMessage;
      if ('ready' in msg) markReady();
      else if ('id' in msg) this.settle(msg);
      else onEvent(host, msg);
    });
    void proc.exited.then(({ code, signal }) => {
      const e = new Error(`the agent in ${host} ended (${signal ?? `exit ${code}`})${this.stderr ? `: ${this.stderr.trim()}` : ''}`);
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
  }

  static start(lab: Lab, host: HostName, onEvent: (host: HostName, e: AgentEvent) => void): AgentClient {
    return new AgentClient(host, lab.spawn(host, lab.agentArgv(host)), onEvent);
  }

  request(req: Request): Promise<Extract<Reply, { ok: true }>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.proc.stdin.write(JSON.stringify({ ...req, id }) + '\n');
    });
  }

  private settle(reply: Reply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (reply.ok) p.resolve(reply);
    else p.reject(new Error(`${this.host}: ${reply.error}`));
  }

  /** Closing stdin tells the agent the run is over. */
  async stop(): Promise<void> {
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 1000);
    await this.proc.exited;
    clearTimeout(timer);
  }
}
