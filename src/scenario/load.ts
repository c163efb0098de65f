// Scenario file → checked plan. Nothing is started on bad input (DESIGN.md), so every
// mistake a scenario file can hold is found here and reported as file:line:col, the form
// editors and terminals turn into a link.
import { readFile, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { InputError } from '../errors.js';
import {
  CAPTURE_POINTS,
  CAUSE_VARIANT,
  Expectation,
  HOSTS,
  Scenario,
  Step,
  type ScenarioFile,
} from './schema.js';

export type Host = (typeof HOSTS)[number];
export type CapturePoint = (typeof CAPTURE_POINTS)[number];
export type SourcePath = readonly (string | number)[];
export interface SourcePosition {
  line: number;
  col: number;
}

export interface LoadedScenario {
  file: string;
  scenario: ScenarioFile;
  /** Every variant of the scenario, `cause` first, then the keys of `variants` in file order. */
  variants: string[];
  /** Source lines: of each step (by index in `scenario.steps`), and of each expectation by variant. */
  lines: { steps: number[]; expect: Record<string, number[]> };
  /** Where a path of the parsed file is written (the nearest existing node for a missing one). */
  locate(path: SourcePath): SourcePosition;
}

export interface Plan {
  file: string;
  name: string;
  summary: string;
  explanation: string;
  rfc: string[];
  variant: string;
  expectOf: string;
  sysctls: Partial<Record<Host, Record<string, string | number>>>;
  firewallRules: string[];
  capture: CapturePoint[];
  steps: { step: Step; line: number }[];
  expect: { expectation: Expectation; line: number }[];
}

// ---------------------------------------------------------------------------------------
// Loading

export async function loadScenario(file: string): Promise<LoadedScenario> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read scenario file: ${(err as Error).message}`, file);
  }
  return parseScenario(text, file);
}

/** Load from text already read; `file` is only used in messages. */
export function parseScenario(text: string, file: string): LoadedScenario {
  const lineCounter = new LineCounter();
  // prettyErrors off: we locate errors ourselves, in the same file:line:col form as the rest.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): SourcePosition => lineCounter.linePos(offset);

  if (doc.errors.length > 0) {
    throw collect(file, doc.errors.map((e) => yamlError(doc, text, e.code, e.message, e.pos[0], at)));
  }
  if (doc.contents === null) {
    throw new InputError('the file holds no scenario (expected a mapping with name, summary, explanation, steps, expect)', file, 1, 1);
  }

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
  const place = (problems: Problem[]): Located[] =>
    problems.map((p) => ({ ...locate(p.path, p.at), message: `${pathText(p.path)}: ${p.message}` }));

  const parsed = Scenario.safeParse(data);
  if (!parsed.success) {
    throw collect(file, place(issueProblems(parsed.error.issues, [], data)));
  }
  const scenario = parsed.data;
  const variants = [CAUSE_VARIANT, ...Object.keys(scenario.variants)];

  const semantic = checkScenario(scenario, variants, locate);
  if (semantic.length > 0) throw collect(file, place(semantic));

  const lineOf = (path: SourcePath) => locate(path).line;
  const expectLines: Record<string, number[]> = {
    [CAUSE_VARIANT]: scenario.expect.map((_, i) => lineOf(['expect', i])),
  };
  for (const [name, v] of Object.entries(scenario.variants)) {
    expectLines[name] = v.expect.map((_, i) => lineOf(['variants', name, 'expect', i]));
  }
  return {
    file,
    scenario,
    variants,
    lines: { steps: scenario.steps.map((_, i) => lineOf(['steps', i])), expect: expectLines },
    locate: (path) => locate(path),
  };
}

/** Every *.yaml in a folder, sorted by name; each file must be named after its `name:`. */
export async function listScenarios(dir: string): Promise<LoadedScenario[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.yaml')).sort();
  } catch (err) {
    throw new InputError(`cannot read scenario folder: ${(err as Error).message}`, dir);
  }
  const loaded: LoadedScenario[] = [];
  for (const n of names) {
    const s = await loadScenario(join(dir, n));
    const expected = basename(n, '.yaml');
    if (s.scenario.name !== expected) {
      // The CLI finds a scenario by file name, reports and run folders use `name:`; they must agree.
      const { line, col } = s.locate(['name']);
      throw new InputError(`name: "${s.scenario.name}" does not match the file name; expected "${expected}"`, s.file, line, col);
    }
    loaded.push(s);
  }
  return loaded;
}

// ---------------------------------------------------------------------------------------
// Planning

/** What one run does: the steps of `variant`, with the expectations of `expectOf` (default: the same variant). */
export function planFor(s: LoadedScenario, variant: string, expectOf?: string): Plan {
  const expectFrom = expectOf ?? variant;
  for (const v of [variant, expectFrom]) {
    if (!s.variants.includes(v)) {
      throw new InputError(`unknown variant "${v}"${didYouMean(v, s.variants)}; ${s.scenario.name} has: ${s.variants.join(', ')}`, s.file);
    }
  }
  const sc = s.scenario;
  const variantDef = variant === CAUSE_VARIANT ? undefined : sc.variants[variant];

  const sysctls: Plan['sysctls'] = {};
  for (const host of HOSTS) {
    const merged = { ...sc.sysctls?.[host], ...variantDef?.sysctls?.[host] };
    if (Object.keys(merged).length > 0) sysctls[host] = merged;
  }

  const expectations = expectFrom === CAUSE_VARIANT ? sc.expect : sc.variants[expectFrom]!.expect;
  const expectLines = s.lines.expect[expectFrom] ?? [];
  return {
    file: s.file,
    name: sc.name,
    summary: sc.summary,
    explanation: sc.explanation,
    rfc: sc.rfc ?? [],
    variant,
    expectOf: expectFrom,
    sysctls,
    firewallRules: sc.firewall?.rules ?? [],
    capture: sc.capture,
    steps: sc.steps.flatMap((step, i) => (runsIn(step, variant) ? [{ step, line: s.lines.steps[i] ?? 0 }] : [])),
    expect: expectations.map((expectation, i) => ({ expectation, line: expectLines[i] ?? 0 })),
  };
}

/** Whether a step runs in a variant: a step without `when` runs in all of them. */
export function runsIn(step: Step, variant: string): boolean {
  if (step.when === undefined) return true;
  return typeof step.when === 'string' ? step.when === variant : step.when.includes(variant);
}

// ---------------------------------------------------------------------------------------
// Errors: a problem names a path of the data; placing it in the file happens once, at the end.

interface Problem {
  path: SourcePath;
  /** Point at the key itself (unknown or bad keys) or at its value (everything else). */
  at: 'value' | 'key';
  message: string;
}
interface Located extends SourcePosition {
  message: string;
}

/** All errors in one InputError: located at the first, the others one per line after it. */
function collect(file: string, errors: Located[]): InputError {
  const sorted = [...errors].sort((a, b) => a.line - b.line || a.col - b.col);
  const unique = sorted.filter((e, i) => i === 0 || e.line !== sorted[i - 1]!.line || e.col !== sorted[i - 1]!.col || e.message !== sorted[i - 1]!.message);
  const [first, ...rest] = unique;
  if (!first) return new InputError('invalid scenario', file);
  const more = rest.map((e) => `${file}:${e.line}:${e.col}: ${e.message}`);
  return new InputError([first.message, ...more].join('\n'), file, first.line, first.col);
}

function yamlError(doc: Document, text: string, code: string, message: string, offset: number, at: (o: number) => SourcePosition): Located {
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

function pathText(path: SourcePath): string {
  if (path.length === 0) return '(top level)';
  // Keys such as sysctl names hold dots; quote them so the path stays readable.
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : !/^[A-Za-z_][\w-]*$/.test(p) ? `[${JSON.stringify(p)}]` : i === 0 ? p : `.${p}`))
    .join('');
}

/** Offset of the node at a path; for a path that does not exist, of the deepest node that does. */
function rangeAt(doc: Document, path: SourcePath, part: 'value' | 'key'): number | undefined {
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
type AnySchema = z.core.$ZodType;
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

function allowedKeys(data: unknown, path: SourcePath): string[] {
  const s = schemaAt(Scenario, data, path);
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

function issueProblems(issues: readonly Issue[], base: SourcePath, data: unknown): Problem[] {
  return issues.flatMap((issue) => issueProblem(issue, base, data));
}

function issueProblem(issue: Issue, base: SourcePath, data: unknown): Problem[] {
  const path: SourcePath = [...base, ...(issue.path as (string | number)[])];
  const value = valueAt(data, path);
  const key = path[path.length - 1];
  const parent = path.slice(0, -1);

  switch (issue.code) {
    case 'unrecognized_keys': {
      const allowed = allowedKeys(data, path);
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
      if (branch) return issueProblems(branch, path, data);
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

function didYouMean(word: string, candidates: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = c.toLowerCase() === word.toLowerCase() ? 0 : editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  // Close enough to be a typo, not just another short word.
  const limit = Math.max(1, Math.min(3, Math.floor(word.length / 3)));
  return best !== undefined && best !== word && bestDistance <= limit ? ` (did you mean "${best}"?)` : '';
}

function editDistance(a: string, b: string): number {
  // Damerau (optimal string alignment): a swapped pair of letters is one typo, not two.
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

// ---------------------------------------------------------------------------------------
// Semantic checks: what the schema cannot see, because it needs the order of the steps or
// names defined elsewhere in the file.

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

function checkScenario(sc: ScenarioFile, variants: string[], locate: (p: SourcePath) => SourcePosition): Problem[] {
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

  if ('rst' in e) {
    const p = [...path, 'rst'];
    connDefined(e.rst.conn, [...p, 'conn']);
    const captured = new Set<string>(sc.capture);
    const notCaptured = (point: string) => `capture point "${point}" is not captured by this scenario; capture: ${sc.capture.join(', ')}`;
    e.rst.seenAt?.forEach((point, j) => {
      if (!captured.has(point)) problems.push({ path: [...p, 'seenAt', j], at: 'value', message: notCaptured(point) });
    });
    e.rst.notSeenAt?.forEach((point, j) => {
      if (!captured.has(point)) problems.push({ path: [...p, 'notSeenAt', j], at: 'value', message: notCaptured(point) });
      else if (e.rst.seenAt?.includes(point)) {
        problems.push({ path: [...p, 'notSeenAt', j], at: 'value', message: `capture point "${point}" is in both seenAt and notSeenAt` });
      }
    });
    for (const point of Object.keys(e.rst.ttlAt ?? {})) {
      if (!captured.has(point)) problems.push({ path: [...p, 'ttlAt', point], at: 'key', message: notCaptured(point) });
    }
  } else if ('app' in e) {
    const p = [...path, 'app'];
    endOf(e.app.host, connDefined(e.app.conn, [...p, 'conn']), e.app.conn, [...p, 'host']);
  } else if ('sockets' in e) {
    const p = [...path, 'sockets'];
    if (e.sockets.conn !== undefined) endOf(e.sockets.host, connDefined(e.sockets.conn, [...p, 'conn']), e.sockets.conn, [...p, 'host']);
    if (!snapshots.has(`${e.sockets.host}\0${e.sockets.snapshot}`)) {
      const onHost = [...snapshots].filter((k) => k.startsWith(`${e.sockets.host}\0`)).map((k) => k.split('\0')[1]!);
      problems.push({
        path: [...p, 'snapshot'],
        at: 'value',
        message: `no snapshot step on ${e.sockets.host} makes snapshot "${e.sockets.snapshot}" in this variant${didYouMean(e.sockets.snapshot, onHost)}${onHost.length ? `; snapshots on ${e.sockets.host}: ${onHost.join(', ')}` : ''}`,
      });
    }
  }
  return problems;
}
