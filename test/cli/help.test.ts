import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli, STACK_LINE } from './helpers';

const COMMON = ['--backend', '--json', '--debug', '--help'];

/** Every option each command must document. */
const COMMANDS: Record<string, string[]> = {
  pretrain: [
    '--corpus',
    '--out',
    '--tokenizer',
    '--tokenizer-dir',
    '--vocab-size',
    '--preset',
    '--n-layer',
    '--n-head',
    '--n-embd',
    '--block-size',
    '--dropout',
    '--batch-size',
    '--grad-accum',
    '--steps',
    '--lr',
    '--min-lr',
    '--warmup',
    '--weight-decay',
    '--val-fraction',
    '--eval-every',
    '--eval-iters',
    '--save-every',
    '--sample-every',
    '--seed',
  ],
  resume: ['--run', '--steps'],
  generate: [
    '--model',
    '--prompt',
    '--max-tokens',
    '--temperature',
    '--top-k',
    '--top-p',
    '--repetition-penalty',
    '--stop',
    '--seed',
    '--no-cache',
  ],
  score: ['--model', '--text', '--prompt', '--continuation'],
  'tokenizer train': ['--corpus', '--type', '--vocab-size', '--out'],
  'tokenizer encode': ['--tokenizer', '--file', '--text'],
  'tokenizer decode': ['--tokenizer', '--ids-file', '--out'],
  finetune: [
    '--model',
    '--task',
    '--data',
    '--out',
    '--val-data',
    '--text-column',
    '--premise-column',
    '--hypothesis-column',
    '--a-column',
    '--b-column',
    '--context-column',
    '--answer-columns',
    '--label-column',
    '--lambda',
    '--epochs',
    '--lr',
    '--batch-size',
    '--warmup',
    '--clf-dropout',
    '--init',
    '--ablation',
  ],
  evaluate: ['--model', '--data', '--batch-size', '--text-column', '--label-column'],
  'eval-icl': ['--model', '--data', '--labels', '--shots', '--template', '--compare', '--limit'],
  export: ['--model', '--out', '--format', '--dtype'],
  import: ['--from', '--out'],
  'dataset import': ['--files', '--field', '--name', '--workspace'],
  'dataset list': ['--workspace'],
};

describe.concurrent('help', () => {
  for (const [name, options] of Object.entries(COMMANDS)) {
    it(`${name} --help documents its options and defaults`, async () => {
      const r = await runCli([...name.split(' '), '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: gpt-studio ${name}`);
      for (const opt of [...options, ...COMMON]) {
        expect(r.stdout, `${name} --help mentions ${opt}`).toMatch(
          new RegExp(`${opt.replace(/-/g, '\\-')}\\b`),
        );
      }
      expect(r.stdout).toContain('default: auto');
    });
  }

  it('pretrain --help shows the engine defaults', async () => {
    const r = await runCli(['pretrain', '--help']);
    expect(r.stdout).toMatch(/--steps N\s+total optimizer steps \[default: 1000\]/);
    expect(r.stdout).toMatch(/--preset tiny\|small\|gpt1[\s\S]*default: tiny/);
  });

  it('lists the commands with no command, `help` and --help', async () => {
    for (const args of [[], ['help'], ['--help']]) {
      const r = await runCli(args);
      expect(r.code).toBe(0);
      for (const name of Object.keys(COMMANDS)) expect(r.stdout).toContain(name);
    }
  });

  it('`help <command>` shows that command', async () => {
    const r = await runCli(['help', 'generate']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--temperature');
  });

  it('runs through the package bin too', async () => {
    const bin = path.join(ROOT, 'bin/gpt-studio.mjs');
    const mode = (await fs.stat(bin)).mode;
    expect(mode & 0o111, 'bin/gpt-studio.mjs is executable').not.toBe(0);
    expect((await fs.readFile(bin, 'utf8')).startsWith('#!/usr/bin/env node\n')).toBe(true);
    const r = await runCli(['score', '--help'], { entry: 'bin/gpt-studio.mjs' });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--continuation');
  });
});

describe.concurrent('usage errors exit 2 with a message', () => {
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
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['tokenizer', 'encdoe'], /did you mean 'tokenizer encode'/],
  ];
  for (const [args, message] of cases) {
    it(args.join(' '), async () => {
      const r = await runCli(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^error: /m);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(STACK_LINE);
      expect(r.stdout).toBe('');
    });
  }

  it('with --json the error is also the last stdout line', async () => {
    const r = await runCli(['generate', '--model', 'm', '--json', '--max-tokens', '-3']);
    expect(r.code).toBe(2);
    const lines = r.stdout.trim().split('\n');
    expect(JSON.parse(lines[lines.length - 1]!)).toEqual({
      type: 'error',
      message: expect.stringContaining('--max-tokens must be at least 1'),
    });
  });
});
