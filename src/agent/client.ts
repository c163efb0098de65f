// The runner's side of an agent: requests with ids, replies matched back to them,
// application events passed to a listener. Every wait on the agent has a deadline, and an
// agent that ends or breaks the protocol while the run needs it fails the run at once.
import { createInterface } from 'node:readline';
import { DeadlineError, LabBrokeError, withDeadline } from '../errors.js';
import type { Lab, LabProcess } from '../lab/backend.js';
import type { HostName } from '../vocabulary.js';
import type { AgentEvent, AgentMessage, Reply, Request } from './protocol.js';

/** An agent is up in well under a second (Node start and module loading); 5 s leaves room
 * for a loaded 2-core machine starting twelve of them at once. */
export const AGENT_READY_MS = 5_000;
/** Default deadline of a request that does not wait on the network (sysctl, counters, …). */
export const REQUEST_MS = 5_000;
const STDERR_LINES = 8;

export interface AgentOptions {
  onEvent: (host: HostName, e: AgentEvent) => void;
  /** Called once when the agent ends or breaks the protocol before stop(): the run is over. */
  onFailure: (e: LabBrokeError) => void;
  readyMs?: number;
}

export class AgentClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Extract<Reply, { ok: true }>) => void; reject: (e: Error) => void }>();
  private stderr = '';
  private failure?: LabBrokeError;
  private stopping = false;
  private failReady!: (e: Error) => void;
  /** Resolves on the agent's ready line; rejects if it ends, breaks the protocol or stays silent past its deadline. */
  readonly ready: Promise<void>;

  private constructor(readonly host: HostName, private readonly proc: LabProcess, private readonly opts: AgentOptions) {
    let markReady!: () => void;
    let isReady = false;
    const ready = new Promise<void>((resolve, reject) => {
      markReady = () => ((isReady = true), resolve());
      this.failReady = reject;
    });
    const readyMs = opts.readyMs ?? AGENT_READY_MS;
    this.ready = withDeadline(ready, readyMs, `the agent in ${host} to become ready`).catch((e: Error) => {
      throw e instanceof DeadlineError ? this.fail(`the agent in ${host} did not become ready within ${readyMs} ms`) : e;
    });
    this.ready.catch(() => undefined);

    proc.stderr.setEncoding('utf8').on('data', (d: string) => (this.stderr = (this.stderr + d).slice(-4000)));
    proc.stdin.on('error', () => undefined);
    createInterface({ input: proc.stdout }).on('line', (line) => {
      let msg: AgentMessage;
      try {
        msg = JSON.parse(line) as AgentMessage;
      } catch {
        // The protocol is one JSON object a line; anything else means replies may be lost.
        this.fail(`the agent in ${host} printed a line that is not JSON: ${JSON.stringify(line.slice(0, 200))}`);
        return;
      }
      if (typeof msg !== 'object' || msg === null) this.fail(`the agent in ${host} printed a line that is not a message: ${JSON.stringify(line.slice(0, 200))}`);
      else if ('ready' in msg) markReady();
      else if ('id' in msg) this.settle(msg);
      else opts.onEvent(host, msg);
    });
    void proc.exited.then(({ code, signal }) => {
      if (this.stopping) return;
      this.fail(`the agent in ${host} ended (${signal ?? `exit ${code}`})${isReady ? ' during the run' : ' before it was ready'}`);
    });
  }

  static start(lab: Lab, host: HostName, opts: AgentOptions): AgentClient {
    return new AgentClient(host, lab.spawn(host, lab.agentArgv(host)), opts);
  }

  /** The agent's last stderr lines, indented under a message. */
  private stderrTail(): string {
    const lines = this.stderr.trim().split('\n').filter(Boolean).slice(-STDERR_LINES);
    return lines.length ? `; its last stderr lines:\n${lines.map((l) => `  | ${l}`).join('\n')}` : '; it wrote nothing on stderr';
  }

  /** Record the first failure, reject every waiting request with it, and tell the run. */
  private fail(message: string): LabBrokeError {
    if (this.failure) return this.failure;
    const e = new LabBrokeError(`${message}${this.stderrTail()}`);
    this.failure = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    this.failReady(e);
    this.opts.onFailure(e);
    return e;
  }

  /** Send a request; its answer is awaited at most `deadlineMs`, and `what` says in the
   * deadline's message what was waited for (default: the agent's answer to the command). */
  request(req: Request, deadlineMs = REQUEST_MS, what = `the agent in ${this.host} to answer ${req.cmd}`): Promise<Extract<Reply, { ok: true }>> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const answer = new Promise<Extract<Reply, { ok: true }>>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.proc.stdin.write(JSON.stringify({ ...req, id }) + '\n');
    });
    return withDeadline(answer, deadlineMs, what).finally(() => this.pending.delete(id));
  }

  private settle(reply: Reply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (reply.ok) p.resolve(reply);
    else p.reject(new Error(`${this.host}: ${reply.error}`));
  }

  /** Closing stdin tells the agent the run is over; one that does not go is killed. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.failReady(new Error(`the agent in ${this.host} was stopped`));
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 1000);
    await this.proc.exited;
    clearTimeout(timer);
  }
}
