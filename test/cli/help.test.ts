/**
 * --help, checked against what the commands do rather than against a copied list: every option a
 * command's help lists is one its parser takes (and the other way round), the defaults it shows
 * are the ones applied, required options and choices are enforced as shown, and a mistyped option
 * is refused with the right suggestion. All in-process (`cli`), so no option list lives here.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMON_OPTIONS, parseCommandArgs, type ParsedArgs } from '../../src/cli/args';
import { COMMANDS } from '../../src/cli/program';
import type { Command } from '../../src/cli/runtime';
import { cli, jsonLines, last, smallCorpus, STACK_LINE, tmpDir, usageError } from './helpers';

/** An option row of a help text: `  -h, --name PLACEHOLDER  description [note; note]`. */
interface HelpOption {
  name: string;
  short?: string;
  /** The value's placeholder; none for a flag. */
  placeholder?: string;
  /** The text after the label, continuation lines joined. */
  text: string;
  required: boolean;
  /** What `[default: …]` shows. */
  shown?: string;
  /** The values a choice takes, from `a|b|c` in the label or the notes. */
  choices?: string[];
}

const ROW = /^ {2}(?:-([A-Za-z]), )?--([a-z][a-z0-9-]*)(?: (\S+))?(?: {2,}(.*))?$/;
const CHOICES = /^[a-z0-9-]+(?:\|[a-z0-9-]+)+$/;

/** The options a help text lists, read the way a person reads it. */
function helpOptions(help: string): HelpOption[] {
  const rows: Array<{ name: string; short?: string; placeholder?: string; text: string }> = [];
  let open = false;
  for (const line of help.split('\n')) {
    const m = ROW.exec(line);
    if (m) {
      rows.push({
        name: m[2]!,
        ...(m[1] ? { short: m[1] } : {}),
        ...(m[3] ? { placeholder: m[3] } : {}),
        text: m[4] ?? '',
      });
      open = true;
    } else if (open && /^ {3,}\S/.test(line)) {
      const row = rows[rows.length - 1]!;
      row.text = `${row.text} ${line.trim()}`.trim();
    } else {
      open = false;
    }
  }
  return rows.map((r) => {
    const notes = /\[([^[\]]*)\]$/.exec(r.text)?.[1]?.split('; ') ?? [];
    const shown = notes.find((n) => n.startsWith('default: '))?.slice('default: '.length);
    const choices = [r.placeholder, ...notes].find((x) => x !== undefined && CHOICES.test(x));
    return {
      ...r,
      required: notes.includes('required'),
      ...(shown !== undefined ? { shown } : {}),
      ...(choices ? { choices: choices.split('|') } : {}),
    };
  });
}

/** A value the option takes: its default, its first choice, or one that fits the placeholder. */
function sampleValue(o: HelpOption): string {
  if (o.choices) return o.choices[0]!;
  if (o.shown !== undefined && /^[\w./-]+$/.test(o.shown)) return o.shown;
  if (/^[NK]$/.test(o.placeholder ?? '')) return '1';
  if (/^[FPTRX]$/.test(o.placeholder ?? '')) return '0.5';
  return 'x';
}

/** `--out` → `--outt`: one edit away from the name, so the suggestion must be the name. */
const typo = (name: string) => name + name[name.length - 1]!;

const help = new Map<string, { command: Command; text: string; options: HelpOption[] }>();

beforeAll(async () => {
  for (const entry of COMMANDS) {
    const r = await cli([...entry.name.split(' '), '--help']);
    expect(r.code, `${entry.name} --help`).toBe(0);
    expect(r.stderr, `${entry.name} --help`).toBe('');
    help.set(entry.name, {
      command: await entry.load(),
      text: r.stdout,
      options: helpOptions(r.stdout),
    });
  }
});

describe('every command: --help and the parser agree', () => {
  for (const { name } of COMMANDS) {
    const parse = (argv: readonly string[]): ParsedArgs => {
      const { command } = help.get(name)!;
      return parseCommandArgs(command.command, command.options, argv);
    };
    /** The required options, each with a value that fits. */
    const required = (except?: string) =>
      help
        .get(name)!
        .options.filter((o) => o.required && o.name !== except)
        .flatMap((o) => [`--${o.name}`, sampleValue(o)]);

    describe(name, () => {
      it('help names the command; `help <command>` and -h print the same', async () => {
        const { text } = help.get(name)!;
        expect(text).toMatch(new RegExp(`^Usage: gpt-studio ${name} `));
        for (const argv of [
          ['help', ...name.split(' ')],
          [...name.split(' '), '-h'],
        ]) {
          const r = await cli(argv);
          expect(r.code).toBe(0);
          expect(r.stdout).toBe(text);
        }
      });

      it('lists exactly the options the parser takes, each under the name it takes', () => {
        const { command, options } = help.get(name)!;
        const listed = options.map((o) => o.name).sort();
        const parsed = [...command.options, ...COMMON_OPTIONS].map((s) => s.name).sort();
        expect(listed).toEqual(parsed);
        expect(new Set(listed).size, 'no option listed twice').toBe(listed.length);
        for (const o of options) {
          const argv = [`--${o.name}`, ...(o.placeholder ? [sampleValue(o)] : [])];
          const args = parse([...required(o.name), ...argv]);
          expect(args.given(o.name), `--${o.name} is taken`).toBe(true);
          if (!o.placeholder) {
            expect(usageError(() => parse([...required(), `--${o.name}=1`]))).toContain(
              'takes no value',
            );
          }
        }
      });

      it('the defaults it shows are the ones applied; nothing else is defaulted', () => {
        const { options } = help.get(name)!;
        const args = parse(required());
        let compared = 0;
        for (const o of options.filter((x) => !x.required)) {
          const applied: unknown =
            args.string(o.name) ?? args.number(o.name) ?? (args.list(o.name)[0] || undefined);
          if (applied === undefined) continue; // described in words: the command decides
          expect(o.shown, `--${o.name} shows its default ${String(applied)}`).toBeDefined();
          if (applied === '') expect(o.shown).toMatch(/^empty\b/);
          else expect(o.shown, `--${o.name}`).toBe(String(applied));
          compared++;
        }
        expect(compared, 'at least --backend').toBeGreaterThan(0);
      });

      it('options marked required are required, and only those', () => {
        const { options } = help.get(name)!;
        expect(() => parse(required())).not.toThrow();
        for (const o of options.filter((x) => x.required)) {
          expect(usageError(() => parse(required(o.name)))).toContain(
            `missing required option --${o.name}`,
          );
        }
      });

      it('choices are the ones listed', () => {
        for (const o of help.get(name)!.options.filter((x) => x.choices)) {
          for (const c of o.choices!) {
            expect(parse([...required(o.name), `--${o.name}`, c]).string(o.name)).toBe(c);
          }
          expect(usageError(() => parse([...required(o.name), `--${o.name}`, 'bogus']))).toContain(
            `--${o.name} must be one of ${o.choices!.join(', ')}`,
          );
        }
      });

      it('a mistyped option is refused (exit 2) with the listed option as the suggestion', async () => {
        for (const o of help.get(name)!.options) {
          const wrong = `--${typo(o.name)}`;
          const r = await cli([...name.split(' '), wrong]);
          expect(r.code, wrong).toBe(2);
          expect(r.stdout).toBe('');
          expect(r.stderr).toContain(
            `error: unknown option '${wrong}' for '${name}' (did you mean --${o.name}?)`,
          );
          expect(r.stderr).not.toMatch(STACK_LINE);
        }
      });
    });
  }
});

describe('the command list', () => {
  const listed = (text: string) =>
    [...text.matchAll(/^ {2}([a-z-]+(?: [a-z-]+)?) {2,}\S/gm)].map((m) => m[1]!);

  it('no command, `help` and --help list every command, and only commands that run', async () => {
    const outs = [];
    for (const argv of [[], ['help'], ['--help'], ['-h']]) outs.push(await cli(argv));
    for (const r of outs) {
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(outs[0]!.stdout);
    }
    const names = listed(outs[0]!.stdout).filter((n) => n !== 'help');
    expect(names.sort()).toEqual(COMMANDS.map((c) => c.name).sort());
    for (const n of names) expect(help.get(n)!.text).toContain(`Usage: gpt-studio ${n} `);
  });

  it('a group lists its commands; without one it is a usage error', async () => {
    for (const group of ['tokenizer', 'dataset']) {
      const subs = COMMANDS.filter((c) => c.name.startsWith(`${group} `)).map((c) => c.name);
      for (const argv of [
        [group, '--help'],
        ['help', group],
        [group, 'help'],
      ]) {
        const r = await cli(argv);
        expect(r.code, argv.join(' ')).toBe(0);
        expect(listed(r.stdout).sort()).toEqual(subs.sort());
      }
      const bare = await cli([group]);
      expect(bare.code).toBe(2);
      expect(bare.stdout).toBe('');
      expect(bare.stderr).toContain(`error: '${group}' needs a command`);
    }
  });
});

describe('defaults the commands apply themselves', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tmpDir();
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('pretrain trains with the defaults its help shows, and the default preset shape', async () => {
    const corpus = await smallCorpus(dir);
    const run = path.join(dir, 'run');
    const given = { steps: '1', 'eval-every': '0', 'sample-every': '0', backend: 'wasm' };
    const argv = Object.entries(given).flatMap(([k, v]) => [`--${k}`, v]);
    const r = await cli(['pretrain', '--corpus', corpus, '--out', run, ...argv, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const state = JSON.parse(await fs.readFile(path.join(run, 'state.json'), 'utf8')) as {
      train: Record<string, number>;
    };
    const camel = (s: string) => s.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
    const { options, text } = help.get('pretrain')!;
    let checked = 0;
    for (const o of options) {
      const key = camel(o.name);
      if (o.shown === undefined || o.name in given || !(key in state.train)) continue;
      expect(String(state.train[key]), `--${o.name}`).toBe(o.shown);
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(10);
    // a share is a percent on the command line and a fraction in the run's config
    const valPercent = options.find((o) => o.name === 'val-percent')!.shown!;
    expect(state.train.valFraction).toBe(Number(valPercent) / 100);

    // --n-layer etc. default to "the preset's", and --preset to the one help names
    const preset = options.find((o) => o.name === 'preset')!.shown!;
    const shape = new RegExp(`${preset} = (\\d+) layers, (\\d+) dims, context (\\d+)`).exec(text);
    expect(shape, `help describes the ${preset} preset`).not.toBeNull();
    const config = JSON.parse(await fs.readFile(path.join(run, 'config.json'), 'utf8')) as Record<
      string,
      number
    >;
    expect([config.n_layer, config.n_embd, config.n_positions]).toEqual(
      shape!.slice(1).map(Number),
    );
    expect(config.resid_pdrop).toBe(Number(options.find((o) => o.name === 'dropout')!.shown));
  });

  it('presets counts with the vocabulary and micro-batch its help shows', async () => {
    const r = await cli(['presets', '--backend', 'wasm', '--json']);
    expect(r.code).toBe(0);
    const result = last(jsonLines(r.stdout));
    const shown = (name: string) =>
      Number(/^\d+/.exec(help.get('presets')!.options.find((o) => o.name === name)!.shown!)![0]);
    expect(result.vocab).toBe(shown('vocab-size'));
    expect(result.batch).toBe(shown('batch-size'));
  });
});

describe('usage errors exit 2 with a message', () => {
  const cases: Array<[string[], RegExp]> = [
    [
      ['pretrain', '--corpus', 'a.txt', '--out', 'x', '--stepz', '3'],
      /unknown option '--stepz'.*--steps/,
    ],
    [['generate', '--model', 'm', '--bogus'], /unknown option '--bogus'/],
    [
      ['pretrain', '--corpus', 'a.txt', '--out', 'x', '--steps', 'ten'],
      /--steps expects an integer/,
    ],
    [['generate', '--model', 'm', '--temperature', 'hot'], /--temperature expects a number/],
    [['generate', '--model', 'm', '--top-p', '1.5'], /--top-p must be at most 1/],
    [['pretrain', '--out', 'x'], /missing required option --corpus/],
    [['pretrain', '--corpus', 'a', '--out', 'x', '--preset', 'huge'], /--preset must be one of/],
    [['pretrain', '--corpus', 'a', '--out', 'x', '--backend', 'tpu'], /--backend must be one of/],
    [['score', '--model', 'm'], /give --text/],
    [['tokenizer', 'encode', '--tokenizer', 't'], /exactly one of --file and --text/],
    [
      ['resume', '--run', 'r', '--steps', '5', '--more', '2'],
      /give --steps N \(the new total\) or --more N \(steps to add\), not both/,
    ],
    // shares are percents on the command line, as in the app: the old fraction flags say so
    [
      ['pretrain', '--corpus', 'a', '--out', 'x', '--val-fraction', '0.1'],
      /'--val-fraction' is now --val-percent: it takes a percent \(10 = 10 %/,
    ],
    [['finetune', '--val-fraction', '0.1'], /'--val-fraction' is now --val-percent/],
    [['finetune', '--warmup', '0.002'], /'--warmup' is now --warmup-percent: it takes a percent/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['tokenizer', 'encdoe'], /did you mean 'tokenizer encode'/],
  ];
  for (const [args, message] of cases) {
    it(args.join(' '), async () => {
      const r = await cli(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^error: /m);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(STACK_LINE);
      expect(r.stdout).toBe('');
    });
  }

  it('with --json the error is also the last stdout line', async () => {
    const r = await cli(['generate', '--model', 'm', '--json', '--max-tokens', '-3']);
    expect(r.code).toBe(2);
    expect(last(jsonLines(r.stdout))).toEqual({
      type: 'error',
      message: expect.stringContaining('--max-tokens must be at least 1'),
    });
  });
});
