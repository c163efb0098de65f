// Semantic checks: what the schema cannot see, because it needs the order of the steps or
// names defined elsewhere in the file.
import { didYouMean } from './did-you-mean.js';
import { pathText, type Problem, type SourcePath, type SourcePosition } from './messages.js';
import { runsIn } from './plan.js';
import { tagExpectation } from './expectation-kind.js';
import type { Expectation, ScenarioFile } from './schema.js';
import { CAUSE_VARIANT, type Host } from '../vocabulary.js';

interface Conn {
  host: Host;
  to: Host;
  line: number;
}
interface Listener {
  id: string;
  host: Host;
  port: number;
  line: number;
  stoppedLine?: number;
}

export function checkScenario(sc: ScenarioFile, variants: string[], locate: (p: SourcePath) => SourcePosition): Problem[] {
  const problems: Problem[] = [];
  const lineOf = (path: SourcePath) => locate(path).line;

  for (const name of Object.keys(sc.variants)) {
    if (name === CAUSE_VARIANT) {
      problems.push({ path: ['variants', name], at: 'key', message: `"${CAUSE_VARIANT}" is the name of the top-level variant; give this one another name` });
    }
  }

  // `when` first: the per-variant checks below depend on it.
  sc.steps.forEach((step, i) => {
    if (step.when === undefined) return;
    const names = typeof step.when === 'string' ? [step.when] : step.when;
    names.forEach((name, j) => {
      if (variants.includes(name)) return;
      problems.push({
        path: typeof step.when === 'string' ? ['steps', i, 'when'] : ['steps', i, 'when', j],
        at: 'value',
        message: `unknown variant "${name}"${didYouMean(name, variants)}; variants: ${variants.join(', ')}`,
      });
    });
  });
  sc.steps.forEach((step, i) => {
    if (step.do === 'connect' && step.to === step.host) {
      problems.push({ path: ['steps', i, 'to'], at: 'value', message: `a connection goes from one host to the other; "to" must differ from "host" (${step.host})` });
    }
  });
  if (problems.length > 0) return problems;

  // Step order matters (a connection exists only after its connect), and steps differ per
  // variant, so the steps are walked once per variant. A mistake found in only some of them
  // says in which.
  const byKey = new Map<string, { problem: Problem; variants: Set<string> }>();
  const note = (variant: string, p: Problem) => {
    const k = `${pathText(p.path)}\0${p.at}\0${p.message}`;
    const seen = byKey.get(k) ?? { problem: p, variants: new Set<string>() };
    seen.variants.add(variant);
    byKey.set(k, seen);
  };

  for (const variant of variants) {
    const conns = new Map<string, Conn>();
    const listeners = new Map<string, Listener>();
    const snapshots = new Set<string>();

    const undefinedConn = (conn: string, i: number): string => {
      const later = sc.steps.findIndex((s, k) => s.do === 'connect' && s.id === conn && (k >= i || !runsIn(s, variant)));
      const where =
        later < 0
          ? ''
          : later >= i
            ? ` (it is connected later, at line ${lineOf(['steps', later])})`
            : ` (its connect step at line ${lineOf(['steps', later])} does not run in this variant)`;
      return `connection "${conn}" is not defined by an earlier connect step${where || didYouMean(conn, [...conns.keys()])}`;
    };

    sc.steps.forEach((step, i) => {
      if (!runsIn(step, variant)) return;
      const at = (field: string): SourcePath => ['steps', i, field];
      switch (step.do) {
        case 'connect': {
          const first = conns.get(step.id);
          if (first) note(variant, { path: at('id'), at: 'value', message: `connection "${step.id}" is defined twice (first at line ${first.line})` });
          else conns.set(step.id, { host: step.host, to: step.to, line: lineOf(['steps', i]) });
          return;
        }
        case 'send':
        case 'close':
        case 'resume':
        case 'waitFor':
        case 'killSocket':
        case 'forge': {
          const conn = conns.get(step.conn);
          if (!conn) note(variant, { path: at('conn'), at: 'value', message: undefinedConn(step.conn, i) });
          else if (step.host !== conn.host && step.host !== conn.to) {
            note(variant, { path: at('host'), at: 'value', message: `${step.host} is not an end of connection "${step.conn}" (${conn.host} → ${conn.to}, line ${conn.line})` });
          }
          return;
        }
        case 'listen': {
          const id = step.id ?? `port${step.port}`;
          const open = [...listeners.values()].filter((l) => l.stoppedLine === undefined);
          const sameId = open.find((l) => l.id === id);
          const samePort = open.find((l) => l.host === step.host && l.port === step.port);
          if (sameId) {
            note(variant, { path: step.id ? at('id') : at('port'), at: 'value', message: `listener "${id}" is already open (line ${sameId.line}); give this one another id or stop that one first` });
          } else if (samePort) {
            note(variant, { path: at('port'), at: 'value', message: `${step.host} already listens on port ${step.port} (listener "${samePort.id}", line ${samePort.line})` });
          }
          if (!sameId) listeners.set(id, { id, host: step.host, port: step.port, line: lineOf(['steps', i]) });
          return;
        }
        case 'stopListener': {
          const l = listeners.get(step.listener);
          if (!l) {
            const known = [...listeners.keys()];
            note(variant, {
              path: at('listener'),
              at: 'value',
              message: `no earlier listen step defines listener "${step.listener}"${didYouMean(step.listener, known)}; ${known.length ? `listeners: ${known.join(', ')}` : 'there is none yet'} (a listener's id defaults to port<PORT>)`,
            });
          } else if (l.stoppedLine !== undefined) {
            note(variant, { path: at('listener'), at: 'value', message: `listener "${l.id}" was already stopped at line ${l.stoppedLine}` });
          } else if (l.host !== step.host) {
            note(variant, { path: at('host'), at: 'value', message: `listener "${l.id}" is on ${l.host} (line ${l.line}), not on ${step.host}` });
          } else {
            l.stoppedLine = lineOf(['steps', i]);
          }
          return;
        }
        case 'snapshot':
          snapshots.add(`${step.host}\0${step.name}`);
          return;
        case 'sleep':
        case 'sysctl':
        case 'iptables':
        case 'announce':
          return;
        default: {
          const unhandled: never = step;
          throw new Error(`checkScenario: unhandled step ${JSON.stringify(unhandled)}`);
        }
      }
    });

    // The expectations of this variant are judged against the steps that run in it.
    const expectations = variant === CAUSE_VARIANT ? sc.expect : sc.variants[variant]!.expect;
    const base: SourcePath = variant === CAUSE_VARIANT ? ['expect'] : ['variants', variant, 'expect'];
    expectations.forEach((e, i) => {
      for (const p of expectationProblems(e, [...base, i], sc, conns, snapshots)) note(variant, p);
    });
  }

  for (const { problem, variants: where } of byKey.values()) {
    const partial = problem.path[0] === 'steps' && variants.length > 1 && where.size < variants.length;
    problems.push(partial ? { ...problem, message: `${problem.message} (in variant${where.size > 1 ? 's' : ''} ${[...where].join(', ')})` } : problem);
  }
  return problems;
}

function expectationProblems(e: Expectation, path: SourcePath, sc: ScenarioFile, conns: Map<string, Conn>, snapshots: Set<string>): Problem[] {
  const problems: Problem[] = [];
  const connDefined = (conn: string | undefined, at: SourcePath): Conn | undefined => {
    if (conn === undefined) return undefined;
    const c = conns.get(conn);
    if (!c) problems.push({ path: at, at: 'value', message: `connection "${conn}" is not defined by any connect step of this variant${didYouMean(conn, [...conns.keys()])}` });
    return c;
  };
  const endOf = (host: Host, conn: Conn | undefined, name: string, at: SourcePath) => {
    if (conn && host !== conn.host && host !== conn.to) {
      problems.push({ path: at, at: 'value', message: `${host} is not an end of connection "${name}" (${conn.host} → ${conn.to})` });
    }
  };

  const x = tagExpectation(e);
  switch (x.kind) {
    case 'rst': {
      const rst = x.rst;
      const p = [...path, 'rst'];
      connDefined(rst.conn, [...p, 'conn']);
      const captured = new Set<string>(sc.capture);
      const notCaptured = (point: string) => `capture point "${point}" is not captured by this scenario; capture: ${sc.capture.join(', ')}`;
      rst.seenAt?.forEach((point, j) => {
        if (!captured.has(point)) problems.push({ path: [...p, 'seenAt', j], at: 'value', message: notCaptured(point) });
      });
      rst.notSeenAt?.forEach((point, j) => {
        if (!captured.has(point)) problems.push({ path: [...p, 'notSeenAt', j], at: 'value', message: notCaptured(point) });
        else if (rst.seenAt?.includes(point)) {
          problems.push({ path: [...p, 'notSeenAt', j], at: 'value', message: `capture point "${point}" is in both seenAt and notSeenAt` });
        }
      });
      for (const point of Object.keys(rst.ttlAt ?? {})) {
        if (!captured.has(point)) problems.push({ path: [...p, 'ttlAt', point], at: 'key', message: notCaptured(point) });
      }
      break;
    }
    case 'app': {
      const p = [...path, 'app'];
      endOf(x.app.host, connDefined(x.app.conn, [...p, 'conn']), x.app.conn, [...p, 'host']);
      break;
    }
    case 'sockets': {
      const sockets = x.sockets;
      const p = [...path, 'sockets'];
      if (sockets.conn !== undefined) endOf(sockets.host, connDefined(sockets.conn, [...p, 'conn']), sockets.conn, [...p, 'host']);
      if (!snapshots.has(`${sockets.host}\0${sockets.snapshot}`)) {
        const onHost = [...snapshots].filter((k) => k.startsWith(`${sockets.host}\0`)).map((k) => k.split('\0')[1]!);
        problems.push({
          path: [...p, 'snapshot'],
          at: 'value',
          message: `no snapshot step on ${sockets.host} makes snapshot "${sockets.snapshot}" in this variant${didYouMean(sockets.snapshot, onHost)}${onHost.length ? `; snapshots on ${sockets.host}: ${onHost.join(', ')}` : ''}`,
        });
      }
      break;
    }
    case 'noRst':
    case 'counter':
      // noRst names nothing; a counter names a host and an nstat name, both checked by the schema.
      break;
    default: {
      const unhandled: never = x;
      throw new Error(`expectationProblems: unhandled expectation ${JSON.stringify(unhandled)}`);
    }
  }
  return problems;
}
