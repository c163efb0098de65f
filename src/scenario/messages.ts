// Errors of a scenario file in words, each placed in the file: a problem names a path of
// the data (from a zod issue, or from the semantic checks); placing it in the file happens
// once, at the end, from the YAML document's ranges.
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { InputError } from '../errors.js';
import { didYouMean } from './did-you-mean.js';
import { Expectation, Scenario, Step } from './schema.js';

export type SourcePath = readonly (string | number)[];
export interface SourcePosition {
  line: number;
  col: number;
}

export interface Problem {
  path: SourcePath;
  /** Point at the key itself (unknown or bad keys) or at its value (everything else). */
  at: 'value' | 'key';
  message: string;
}
export interface Located extends SourcePosition {
  message: string;
}

/** All errors in one InputError: located at the first, the others one per line after it. */
export function collect(file: string, errors: Located[]): InputError {
  const sorted = [...errors].sort((a, b) => a.line - b.line || a.col - b.col);
  const unique = sorted.filter((e, i) => i === 0 || e.line !== sorted[i - 1]!.line || e.col !== sorted[i - 1]!.col || e.message !== sorted[i - 1]!.message);
  const [first, ...rest] = unique;
  if (!first) return new InputError('invalid scenario', file);
  const more = rest.map((e) => `${file}:${e.line}:${e.col}: ${e.message}`);
  return new InputError([first.message, ...more].join('\n'), file, first.line, first.col);
}

/** A YAML file read for checking: its data, and where any path of it is written. */
export interface YamlFile {
  data: unknown;
  /** where a path is written (the nearest existing node for a missing one) */
  locate(path: SourcePath, part?: 'value' | 'key'): SourcePosition;
  /** the problems, each placed at its path and named by it */
  place(problems: Problem[]): Located[];
}

/** Parse a YAML file of ours (a scenario, a firewall-test expectation file); a YAML error
 * or an empty file is bad input, located; `empty` says what the file should have held. */
export function readYaml(text: string, file: string, empty: string): YamlFile {
  const lineCounter = new LineCounter();
  // prettyErrors off: we locate errors ourselves, in the same file:line:col form as the rest.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): SourcePosition => lineCounter.linePos(offset);
  if (doc.errors.length > 0) throw collect(file, doc.errors.map((e) => yamlError(doc, text, e.code, e.message, e.pos[0], at)));
  if (doc.contents === null) throw new InputError(empty, file, 1, 1);
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    // e.g. an alias bomb: yaml refuses to expand too many aliases.
    throw new InputError(`cannot read the YAML: ${(err as Error).message}`, file, 1, 1);
  }
  const locate = (path: SourcePath, part: 'value' | 'key' = 'value'): SourcePosition => {
    const range = rangeAt(doc, path, part);
    return range === undefined ? { line: 1, col: 1 } : at(range);
  };
  const place = (problems: Problem[]): Located[] => problems.map((p) => ({ ...locate(p.path, p.at), message: `${pathText(p.path)}: ${p.message}` }));
  return { data, locate, place };
}

export function yamlError(doc: Document, text: string, code: string, message: string, offset: number, at: (o: number) => SourcePosition): Located {
  if (code === 'DUPLICATE_KEY') {
    // yaml points at the key's first character only; the message should name the whole key.
    const key = /^("(?:[^"\\]|\\.)*"|'[^']*'|[^:\n]*?)\s*:/.exec(text.slice(offset))?.[1] ?? text.charAt(offset);
    return { ...at(offset), message: `duplicate key ${key.startsWith('"') || key.startsWith("'") ? key : `"${key}"`} (a key may appear only once in a mapping)` };
  }
  // An unclosed [ or { is only noticed where the next block line starts; point at the bracket
  // that was never closed, which is where the mistake is.
  if (/^Flow (sequence|map)/.test(message)) {
    let open: { start: number; bracket: string } | undefined;
    visit(doc, {
      Collection(_, node) {
        const range = node.range;
        if (!node.flow || !range || range[0] > offset) return;
        const closing = isSeq(node) ? ']' : '}';
        if (!text.slice(range[0], range[1]).trimEnd().endsWith(closing) && (!open || range[0] > open.start)) open = { start: range[0], bracket: closing };
      },
    });
    if (open) return { ...at(open.start), message: `YAML syntax: this flow ${open.bracket === ']' ? 'sequence' : 'mapping'} is never closed with ${open.bracket}` };
  }
  return { ...at(offset), message: `YAML syntax: ${message}` };
}

export function pathText(path: SourcePath): string {
  if (path.length === 0) return '(top level)';
  // Keys such as sysctl names hold dots; quote them so the path stays readable.
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : !/^[A-Za-z_][\w-]*$/.test(p) ? `[${JSON.stringify(p)}]` : i === 0 ? p : `.${p}`))
    .join('');
}

/** Offset of the node at a path; for a path that does not exist, of the deepest node that does. */
export function rangeAt(doc: Document, path: SourcePath, part: 'value' | 'key'): number | undefined {
  let node: unknown = doc.contents;
  let offset = (node as Node | null)?.range?.[0];
  for (let i = 0; i < path.length; i++) {
    if (isAlias(node)) node = node.resolve(doc);
    const seg = path[i]!;
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && String(isScalar(p.key) ? p.key.value : p.key) === String(seg));
      if (!pair) return offset;
      const key = pair.key as Node | null;
      const value = pair.value as Node | null;
      if ((last && part === 'key') || !value?.range) return key?.range?.[0] ?? offset;
      node = value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as Node | undefined;
      if (!item?.range) return offset;
      node = item;
    } else {
      return offset;
    }
    offset = (node as Node).range?.[0] ?? offset;
  }
  return offset;
}

function valueAt(data: unknown, path: SourcePath): unknown {
  let v = data;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

function kindOf(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'number') return Number.isInteger(v) ? `the integer ${v}` : `the number ${v}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
}

const TYPE_WORDS: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
};

// The zod schema at a path of the data, to list the keys allowed there. Unions are resolved
// the way zod resolves them for this data: by the discriminator, or by the keys present.
export type AnySchema = z.core.$ZodType;
function schemaAt(root: AnySchema, data: unknown, path: SourcePath): AnySchema | undefined {
  let s: AnySchema | undefined = root;
  let v = data;
  for (let i = 0; i <= path.length && s; i++) {
    s = unwrap(s, v);
    if (i === path.length || !s) break;
    const seg = path[i]!;
    const def = s._zod.def as unknown as Record<string, unknown> & { type: string };
    if (def.type === 'object') s = (def.shape as Record<string, AnySchema>)[String(seg)];
    else if (def.type === 'array') s = def.element as AnySchema;
    else if (def.type === 'record') s = def.valueType as AnySchema;
    else return undefined;
    v = valueAt(v, [seg]);
  }
  return s;
}

function unwrap(s: AnySchema, v: unknown): AnySchema | undefined {
  for (;;) {
    const def = s._zod.def as unknown as Record<string, unknown> & { type: string };
    if (def.type === 'optional' || def.type === 'default' || def.type === 'nullable') s = def.innerType as AnySchema;
    else if (def.type === 'pipe') s = def.in as AnySchema;
    else if (def.type === 'union') {
      const options = def.options as AnySchema[];
      const picked = pickOption(options, v, def.discriminator as string | undefined);
      if (!picked) return undefined;
      s = picked;
    } else return s;
  }
}

function shapeOf(s: AnySchema): Record<string, AnySchema> | undefined {
  const def = s._zod.def as unknown as Record<string, unknown> & { type: string };
  return def.type === 'object' ? (def.shape as Record<string, AnySchema>) : undefined;
}

function pickOption(options: AnySchema[], v: unknown, discriminator: string | undefined): AnySchema | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    return options.find((o) => shapeOf(o) === undefined);
  }
  const rec = v as Record<string, unknown>;
  if (discriminator) {
    return options.find((o) => {
      const d = shapeOf(o)?.[discriminator]?._zod.def as { values?: unknown[] } | undefined;
      return d?.values?.includes(rec[discriminator]);
    });
  }
  let best: AnySchema | undefined;
  let bestScore = 0;
  for (const o of options) {
    const shape = shapeOf(o);
    if (!shape) continue;
    const score = Object.keys(rec).filter((k) => k in shape).length;
    if (score > bestScore) [best, bestScore] = [o, score];
  }
  return best;
}

function allowedKeys(data: unknown, path: SourcePath, root: AnySchema): string[] {
  const s = schemaAt(root, data, path);
  if (!s) return [];
  const shape = shapeOf(s);
  if (shape) return Object.keys(shape);
  const def = s._zod.def as unknown as Record<string, unknown> & { type: string };
  if (def.type === 'record') {
    const keyDef = (def.keyType as AnySchema)._zod.def as unknown as { type: string; entries?: Record<string, string> };
    if (keyDef.type === 'enum' && keyDef.entries) return Object.values(keyDef.entries);
  }
  return [];
}

const STEP_KINDS: string[] = Step.options.map((o) => o.shape.do.value);
const EXPECTATION_KINDS: string[] = Expectation.options.map((o) => Object.keys(o.shape)[0]!);

type Issue = z.core.$ZodIssue;

/** Problems in words; `root` is the schema the data was checked against (a scenario's, unless
 * another file kind, such as firewall-test's expectation file, uses the same messages). */
export function issueProblems(issues: readonly Issue[], base: SourcePath, data: unknown, root: AnySchema = Scenario): Problem[] {
  return issues.flatMap((issue) => issueProblem(issue, base, data, root));
}

function issueProblem(issue: Issue, base: SourcePath, data: unknown, root: AnySchema): Problem[] {
  const path: SourcePath = [...base, ...(issue.path as (string | number)[])];
  const value = valueAt(data, path);
  const key = path[path.length - 1];
  const parent = path.slice(0, -1);

  switch (issue.code) {
    case 'unrecognized_keys': {
      const allowed = allowedKeys(data, path, root);
      return issue.keys.map((k) => ({
        path: [...path, k],
        at: 'key' as const,
        message: `unknown key "${k}"${didYouMean(k, allowed)}${allowed.length ? `; allowed keys: ${allowed.join(', ')}` : ''}`,
      }));
    }
    case 'invalid_union': {
      // A step whose `do:` names no step kind.
      if ('discriminator' in issue && issue.discriminator) {
        const kinds = (issue as { options?: unknown[] }).options?.map(String) ?? STEP_KINDS;
        const what = issue.discriminator === 'do' ? 'step kind' : issue.discriminator;
        if (value === undefined) {
          return [{ path: parent, at: 'value', message: `missing "${issue.discriminator}:"; ${what}s: ${kinds.join(', ')}` }];
        }
        return [{ path, at: 'value', message: `unknown ${what} ${show(value)}${didYouMean(String(value), kinds)}; ${what}s: ${kinds.join(', ')}` }];
      }
      const branch = plausibleBranch(issue.errors, value);
      if (branch) return issueProblems(branch, path, data, root);
      if (isExpectationPath(path)) return expectationKindProblem(path, value);
      const expected = [...new Set(issue.errors.flatMap((b) => b.filter((i) => i.path.length === 0).map((i) => expectedText(i))))];
      return [{ path, at: 'value', message: `got ${kindOf(value)}; expected ${expected.join(', or ') || 'something else'}` }];
    }
    case 'invalid_value': {
      const allowed = issue.values.map(String);
      if (allowed.length === 1) return [{ path, at: 'value', message: `got ${show(value)}; expected ${show(issue.values[0])}` }];
      const hostNote = key === 'host' ? connEndsNote(data, parent) : '';
      return [{
        path,
        at: 'value',
        message: `${show(value)} is not one of: ${allowed.join(', ')}${didYouMean(String(value), allowed)}${hostNote}`,
      }];
    }
    case 'invalid_type': {
      if (value === undefined && typeof key === 'string') {
        return [{ path: parent, at: 'value', message: `missing key "${key}" (expected ${TYPE_WORDS[issue.expected] ?? issue.expected})` }];
      }
      return [{ path, at: 'value', message: `got ${kindOf(value)}; expected ${TYPE_WORDS[issue.expected] ?? issue.expected}` }];
    }
    case 'invalid_key': {
      const why = issue.issues.map((i) => expectedText(i)).join('; ');
      return [{ path, at: 'key', message: `invalid key ${show(key)}: expected ${why}` }];
    }
    case 'too_big':
    case 'too_small':
    case 'invalid_format':
      return [{ path, at: 'value', message: `got ${kindOf(value)}; expected ${expectedText(issue)}` }];
    default:
      return [{ path, at: 'value', message: issue.message }];
  }
}

/** "what was expected", from one zod issue, in words. */
function expectedText(issue: Issue): string {
  switch (issue.code) {
    case 'too_big':
    case 'too_small': {
      const big = issue.code === 'too_big';
      const limit = Number(big ? issue.maximum : issue.minimum);
      const bound = issue.inclusive ? limit : big ? limit - 1 : limit + 1;
      const word = big ? 'at most' : 'at least';
      if (issue.origin === 'array') return `${word} ${bound} item${bound === 1 ? '' : 's'}`;
      if (issue.origin === 'string') return bound === 1 && !big ? 'a non-empty string' : `${word} ${bound} characters`;
      return `a number ${word} ${bound}`;
    }
    case 'invalid_format':
      // Schema regexes carry a message in words; zod's own says "Invalid string: ...".
      return issue.message.startsWith('Invalid') && issue.format === 'regex' && 'pattern' in issue
        ? `a string matching ${String(issue.pattern)}`
        : issue.message;
    case 'invalid_type':
      return TYPE_WORDS[issue.expected] ?? issue.expected;
    case 'invalid_value':
      return `one of: ${issue.values.map(String).join(', ')}`;
    default:
      return issue.message;
  }
}

// Of the branches of a failed union, the one the author meant: the one that did not fail
// on the value's own type or top-level keys. Without it we can only say "none matched".
function plausibleBranch(branches: Issue[][], value: unknown): Issue[] | undefined {
  const plausible = branches.filter((issues) =>
    issues.every((i) => {
      if (i.path.length === 0) return i.code !== 'invalid_type' && i.code !== 'unrecognized_keys' && i.code !== 'invalid_union';
      if (i.path.length === 1 && i.code === 'invalid_type') return valueAt(value, i.path as (string | number)[]) !== undefined;
      return true;
    }),
  );
  return plausible.sort((a, b) => a.length - b.length)[0];
}

function isExpectationPath(path: SourcePath): boolean {
  return (
    (path.length === 2 && path[0] === 'expect') ||
    (path.length === 4 && path[0] === 'variants' && path[2] === 'expect')
  );
}

function expectationKindProblem(path: SourcePath, value: unknown): Problem[] {
  const kinds = EXPECTATION_KINDS.join(', ');
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return [{ path, at: 'value', message: `got ${kindOf(value)}; expected a mapping with one of the keys: ${kinds}` }];
  }
  const keys = Object.keys(value);
  const unknown = keys.filter((k) => !EXPECTATION_KINDS.includes(k));
  if (unknown.length > 0) {
    return unknown.map((k) => ({
      path: [...path, k],
      at: 'key' as const,
      message: `unknown expectation "${k}"${didYouMean(k, EXPECTATION_KINDS)}; expectation kinds: ${kinds}`,
    }));
  }
  return [{ path, at: 'value', message: `an expectation has exactly one key, one of: ${kinds}; got ${keys.join(', ') || 'none'}` }];
}

// A step on a connection can only run on one of its ends; saying which ends they are turns
// a bare enum error into the actual mistake.
function connEndsNote(data: unknown, stepPath: SourcePath): string {
  const conn = valueAt(data, [...stepPath, 'conn']);
  if (typeof conn !== 'string') return '';
  const steps = valueAt(data, ['steps']);
  if (!Array.isArray(steps)) return '';
  const connect = steps.find((s) => s?.do === 'connect' && s?.id === conn) as { host?: unknown; to?: unknown } | undefined;
  if (!connect) return '';
  return ` (a step on connection "${conn}" runs on one of its ends: ${String(connect.host)} or ${String(connect.to)})`;
}
