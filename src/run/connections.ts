// What a run knows of its connections while it runs: each connection's ends (the
// initiator, and the accepted end once the acceptor's agent reports it), with what each
// end's application saw, matched up by their ports. Scenario steps and firewall-test's
// rows use it alike.
import type { AgentEvent } from '../agent/protocol.js';
import type { ConnEnd, ConnObservation, EndHost, HostName } from '../vocabulary.js';

/** What the runner knows of the scenario's connections while the steps run (firewall-test's rows too). */
export class Connections {
  readonly conns: Record<string, ConnObservation> = {};
  /** accepted ends not yet matched to a connection, by `${host} ${agent name}` */
  private readonly accepted = new Map<string, ConnEnd & { agentName: string }>();
  /** accepted ends already matched to a connection, by `${host} ${agent name}`: their later events */
  private readonly linked = new Map<string, ConnEnd>();
  private readonly agentNames = new Map<ConnEnd, string>();
  private readonly waiters = new Set<() => void>();

  constructor(private readonly t0: () => number) {}

  connect(id: string, host: EndHost, remotePort: number): void {
    this.conns[id] = { id, initiator: { host, remotePort, events: [] } };
    this.agentNames.set(this.conns[id]!.initiator, id);
  }

  onEvent(host: HostName, e: AgentEvent): void {
    const t = e.t - this.t0();
    const event = { t, event: e.event, ...(e.code ? { code: e.code } : {}), ...(e.bytes ? { bytes: e.bytes } : {}) };
    if (e.event === 'accepted') {
      this.accepted.set(`${host} ${e.conn}`, { host: host as EndHost, localPort: e.localPort, remotePort: e.remotePort, events: [event], agentName: e.conn });
    } else {
      const end = this.conns[e.conn]?.initiator.host === host ? this.conns[e.conn]!.initiator : this.accepted.get(`${host} ${e.conn}`) ?? this.linked.get(`${host} ${e.conn}`);
      if (!end) return;
      end.events.push(event);
      if (e.event === 'connected') end.localPort = e.localPort;
    }
    this.link();
  }

  /** An accepted end belongs to the connection whose initiator's local port is its remote port. */
  private link(): void {
    for (const [key, end] of this.accepted) {
      const conn = Object.values(this.conns).find((c) => !c.acceptor && c.initiator.host !== end.host && c.initiator.localPort === end.remotePort);
      if (!conn) continue;
      const { agentName, ...acceptor } = end;
      conn.acceptor = acceptor;
      this.agentNames.set(acceptor, agentName);
      this.linked.set(key, acceptor);
      this.accepted.delete(key);
    }
    for (const w of this.waiters) w();
  }

  setLocalPort(id: string, port: number | undefined): void {
    const end = this.conns[id]?.initiator;
    if (end && port) end.localPort = port;
    this.link();
  }

  /** The end of connection `id` in `host`, if it is known yet. */
  endOf(id: string, host: EndHost): ConnEnd | undefined {
    const c = this.conns[id];
    return c?.initiator.host === host ? c.initiator : c?.acceptor;
  }

  /** The end of connection `id` in `host`; the accepted end may take a moment to be known. */
  async end(id: string, host: EndHost, timeoutMs = 2000): Promise<ConnEnd> {
    await this.until(() => this.endOf(id, host) !== undefined, timeoutMs);
    const end = this.endOf(id, host);
    if (!end) throw new Error(`connection ${id} has no end in ${host}: it was never accepted there`);
    return end;
  }

  agentName(end: ConnEnd): string {
    return this.agentNames.get(end)!;
  }

  /** Resolve when `ok()` holds, checked after every event; false on timeout. */
  until(ok: () => boolean, timeoutMs: number): Promise<boolean> {
    if (ok()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (!ok()) return;
        done(true);
      };
      const done = (v: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(v);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.waiters.add(check);
    });
  }
}
