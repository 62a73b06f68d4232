/**
 * Option parsing shared by every command: node:util's parseArgs for tokenizing, then our own
 * checks so every mistake gets a message that names the option (unknown flags, missing values,
 * numbers that do not parse, values out of range) and exits with the usage code 2.
 */
import { parseArgs } from 'node:util';

export const PROGRAM = 'gpt-studio';

/** A mistake in how the command was invoked: exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
  /** The command whose --help the message points to, e.g. 'pretrain' or 'tokenizer train'. */
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super(message);
    this.command = command;
  }
}

export type OptionKind = 'string' | 'strings' | 'int' | 'number' | 'boolean' | 'choice';

export interface OptionSpec {
  /** Long name without the dashes, e.g. 'batch-size'. */
  name: string;
  short?: string;
  kind: OptionKind;
  /** Placeholder shown in help, e.g. 'FILE', 'N'. */
  value?: string;
  choices?: readonly string[];
  /** Applied when the option is absent, and shown in help. */
  default?: string | number | boolean;
  /** Shown in help instead of `default` (e.g. "the preset's"); nothing is applied. */
  defaultText?: string;
  description: string;
  required?: boolean;
  /** 'strings' only: plain arguments after the option are more values (`--corpus a.txt b.txt`). */
  variadic?: boolean;
  /** 'string' only: a plain argument gives its value too (`pull gpt2` as `pull --repo gpt2`). */
  positional?: boolean;
  /** Inclusive lower bound (numbers). */
  min?: number;
  /** Exclusive lower bound (numbers). */
  above?: number;
  /** Inclusive upper bound (numbers). */
  max?: number;
  /** Exclusive upper bound (numbers). */
  below?: number;
  /** Heading the option is listed under in --help. */
  group?: string;
  /** A former name of this option, refused with a pointer to this one and what changed. */
  formerly?: { name: string; change: string };
}

export const COMMON_OPTIONS: OptionSpec[] = [
  {
    name: 'backend',
    kind: 'choice',
    value: 'NAME',
    choices: ['auto', 'node-gpu', 'webgpu', 'node', 'wasm', 'cpu'],
    default: 'auto',
    description: 'compute backend (auto picks the fastest that loads)',
    group: 'Common',
  },
  {
    name: 'json',
    kind: 'boolean',
    description: 'print one JSON object per line; the result is the last line',
    group: 'Common',
  },
  {
    name: 'debug',
    kind: 'boolean',
    description: 'print stack traces with errors',
    group: 'Common',
  },
  { name: 'help', short: 'h', kind: 'boolean', description: 'show this help', group: 'Common' },
];

export type Value = string | number | boolean | string[];

export class ParsedArgs {
  constructor(
    readonly command: string,
    private readonly values: Map<string, Value>,
    private readonly explicit: ReadonlySet<string>,
  ) {}

  /** Whether the option was given on the command line (defaults do not count). */
  given(name: string): boolean {
    return this.explicit.has(name);
  }

  string(name: string): string | undefined {
    const v = this.values.get(name);
    return typeof v === 'string' ? v : undefined;
  }

  requireString(name: string): string {
    const v = this.string(name);
    if (v === undefined) throw new UsageError(`missing required option --${name}`, this.command);
    return v;
  }

  number(name: string): number | undefined {
    const v = this.values.get(name);
    return typeof v === 'number' ? v : undefined;
  }

  flag(name: string): boolean {
    return this.values.get(name) === true;
  }

  list(name: string): string[] {
    const v = this.values.get(name);
    return Array.isArray(v) ? v : [];
  }
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j]!;
      row[j] = Math.min(up + 1, row[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length]!;
}

export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(word, c);
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  const allowed = word.length <= 3 ? 1 : 2 + Math.floor(word.length / 8);
  return best !== undefined && bestD <= allowed ? best : undefined;
}

function looksLikeOption(s: string): boolean {
  return /^--?[A-Za-z]/.test(s);
}

function parseNumber(spec: OptionSpec, raw: string, command: string): number {
  const flag = `--${spec.name}`;
  const int = spec.kind === 'int';
  const n = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n))) {
    throw new UsageError(
      `${flag} expects ${int ? 'an integer' : 'a number'}, got '${raw}'`,
      command,
    );
  }
  const fail = (rule: string) => new UsageError(`${flag} must be ${rule}, got ${raw}`, command);
  if (spec.min !== undefined && n < spec.min) throw fail(`at least ${spec.min}`);
  if (spec.above !== undefined && !(n > spec.above)) throw fail(`greater than ${spec.above}`);
  if (spec.max !== undefined && n > spec.max) throw fail(`at most ${spec.max}`);
  if (spec.below !== undefined && !(n < spec.below)) throw fail(`less than ${spec.below}`);
  return n;
}

/** True when argv asks for help (before any `--`). */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

/**
 * Parses `argv` against `specs` (COMMON_OPTIONS are added). Throws UsageError for anything it
 * does not understand.
 */
export function parseCommandArgs(
  command: string,
  specs: readonly OptionSpec[],
  argv: readonly string[],
): ParsedArgs {
  const all = [...specs, ...COMMON_OPTIONS];
  const byName = new Map(all.map((s) => [s.name, s]));
  const byShort = new Map(all.filter((s) => s.short).map((s) => [s.short!, s]));
  const config: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> =
    {};
  for (const s of all) {
    config[s.name] = {
      type: s.kind === 'boolean' ? 'boolean' : 'string',
      ...(s.short ? { short: s.short } : {}),
      ...(s.kind === 'strings' ? { multiple: true } : {}),
    };
  }
  const { tokens } = parseArgs({
    args: [...argv],
    options: config,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const help = `see '${PROGRAM} ${command} --help'`;
  const values = new Map<string, Value>();
  const explicit = new Set<string>();
  let variadic: OptionSpec | undefined;

  for (const token of tokens) {
    if (token.kind === 'option-terminator') {
      variadic = undefined;
      continue;
    }
    if (token.kind === 'positional') {
      if (variadic) {
        (values.get(variadic.name) as string[]).push(token.value);
        continue;
      }
      const slot = all.find((s) => s.positional && s.kind === 'string' && !values.has(s.name));
      if (slot) {
        values.set(slot.name, token.value);
        explicit.add(slot.name);
        continue;
      }
      throw new UsageError(`unexpected argument '${token.value}' (${help})`, command);
    }
    // parseArgs names a known short option by its long name ('-h' → 'help')
    const spec = byName.get(token.name) ?? byShort.get(token.name);
    const renamed = spec ? undefined : all.find((s) => s.formerly?.name === token.name);
    if (renamed) {
      throw new UsageError(
        `'${token.rawName}' is now --${renamed.name}: ${renamed.formerly!.change} — ${help}`,
        command,
      );
    }
    if (!spec) {
      const near = suggest(
        token.name,
        all.map((s) => s.name),
      );
      throw new UsageError(
        `unknown option '${token.rawName}' for '${command}'` +
          (near ? ` (did you mean --${near}?)` : '') +
          ` — ${help}`,
        command,
      );
    }
    const flag = `--${spec.name}`;
    variadic = undefined;
    explicit.add(spec.name);
    if (spec.kind === 'boolean') {
      if (token.value !== undefined) {
        throw new UsageError(`${flag} takes no value (got '${token.value}')`, command);
      }
      values.set(spec.name, true);
      continue;
    }
    const raw = token.value;
    if (raw === undefined) throw new UsageError(`${flag} needs a value (${help})`, command);
    if (!token.inlineValue && looksLikeOption(raw)) {
      throw new UsageError(
        `${flag} needs a value, got the option '${raw}' (write ${flag}=${raw} if you mean it)`,
        command,
      );
    }
    switch (spec.kind) {
      case 'strings': {
        const list = (values.get(spec.name) as string[] | undefined) ?? [];
        list.push(raw);
        values.set(spec.name, list);
        if (spec.variadic) variadic = spec;
        break;
      }
      case 'int':
      case 'number':
        values.set(spec.name, parseNumber(spec, raw, command));
        break;
      case 'choice':
        if (!spec.choices?.includes(raw)) {
          throw new UsageError(
            `${flag} must be one of ${spec.choices?.join(', ')}; got '${raw}'`,
            command,
          );
        }
        values.set(spec.name, raw);
        break;
      case 'string':
        values.set(spec.name, raw);
        break;
    }
  }

  for (const s of all) {
    if (values.has(s.name)) continue;
    if (s.required) throw new UsageError(`missing required option --${s.name} (${help})`, command);
    if (s.default !== undefined) values.set(s.name, s.default);
  }
  return new ParsedArgs(command, values, explicit);
}

function optionLabel(s: OptionSpec): string {
  const names = (s.short ? `-${s.short}, ` : '') + `--${s.name}`;
  if (s.kind === 'boolean') return names;
  const placeholder = s.value ?? (s.choices ? s.choices.join('|') : 'VALUE');
  return `${names} ${placeholder}${s.variadic ? '...' : ''}`;
}

function optionNotes(s: OptionSpec): string {
  const bits: string[] = [];
  if (s.required) bits.push('required');
  if (s.choices && s.value && s.value !== s.choices.join('|')) bits.push(s.choices.join('|'));
  if (s.defaultText !== undefined) bits.push(`default: ${s.defaultText}`);
  else if (s.default !== undefined && s.kind !== 'boolean') bits.push(`default: ${s.default}`);
  if (s.kind === 'strings') bits.push('repeatable');
  // Non-breaking inside each note, so "default: 10" is never split across lines.
  return bits.length ? ` [${bits.map((b) => b.replace(/ /g, NBSP)).join('; ')}]` : '';
}

export interface HelpInfo {
  command: string;
  usage: string;
  description: string;
  options: readonly OptionSpec[];
  examples?: readonly string[];
  /** Extra paragraphs after the options. */
  notes?: readonly string[];
}

/** Stands for a space that `wrap` must not break at. */
const NBSP = '\u0000';

/** Wraps `text` to `width` columns, continuing lines with `indent` spaces. */
function wrap(text: string, width: number, indent: number): string {
  const words = text.split(' ');
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && line.length + 1 + w.length > width) {
      lines.push(line);
      line = w;
    } else {
      line = line ? `${line} ${w}` : w;
    }
  }
  if (line) lines.push(line);
  return lines.join('\n' + ' '.repeat(indent)).replaceAll(NBSP, ' ');
}

export function formatHelp(info: HelpInfo): string {
  const all = [...info.options, ...COMMON_OPTIONS];
  const labels = all.map(optionLabel);
  const col = Math.min(32, Math.max(...labels.map((l) => l.length)) + 2);
  const groups = new Map<string, string[]>();
  all.forEach((s, i) => {
    const label = labels[i]!;
    const text = s.description + optionNotes(s);
    const pad =
      label.length + 2 > col ? `\n${' '.repeat(col + 2)}` : ' '.repeat(col - label.length);
    const line = `  ${label}${pad}${wrap(text, Math.max(40, 100 - col - 2), col + 2)}`;
    const g = s.group ?? 'Options';
    groups.set(g, [...(groups.get(g) ?? []), line]);
  });
  const parts = [
    `Usage: ${PROGRAM} ${info.command} ${info.usage}`,
    '',
    wrap(info.description, 100, 0),
  ];
  for (const [g, lines] of groups) parts.push('', `${g}:`, ...lines);
  for (const n of info.notes ?? []) parts.push('', wrap(n, 100, 0));
  if (info.examples?.length) {
    parts.push('', 'Examples:', ...info.examples.map((e) => `  ${PROGRAM} ${e}`));
  }
  return parts.join('\n') + '\n';
}
