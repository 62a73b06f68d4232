import { describe, expect, it } from 'vitest';
import {
  formatHelp,
  parseCommandArgs,
  suggest,
  wantsHelp,
  type OptionSpec,
} from '../../src/cli/args';
import { usageError } from './helpers';
import { formatCount, formatDuration, formatLoss } from '../../src/cli/output';

const SPECS: OptionSpec[] = [
  { name: 'corpus', kind: 'strings', variadic: true, value: 'FILE', description: 'input' },
  { name: 'out', kind: 'string', value: 'DIR', required: true, description: 'output' },
  { name: 'steps', kind: 'int', value: 'N', min: 1, default: 10, description: 'steps' },
  { name: 'lr', kind: 'number', value: 'X', above: 0, default: 0.001, description: 'rate' },
  { name: 'stop', kind: 'strings', value: 'TEXT', description: 'stops' },
  { name: 'kind', kind: 'choice', choices: ['a', 'b'], default: 'a', description: 'kind' },
  { name: 'no-cache', kind: 'boolean', description: 'no cache' },
];

const parse = (...argv: string[]) => parseCommandArgs('test', SPECS, argv);

describe('parseCommandArgs', () => {
  it('takes -h, the one short option, as --help', () => {
    const args = parse('-h', '--out', 'o');
    expect(args.flag('help')).toBe(true);
  });

  it('applies defaults and tells given options from defaulted ones', () => {
    const a = parse('--out', 'x');
    expect(a.string('out')).toBe('x');
    expect(a.number('steps')).toBe(10);
    expect(a.given('steps')).toBe(false);
    expect(a.given('out')).toBe(true);
    expect(a.string('backend')).toBe('auto');
    expect(a.flag('json')).toBe(false);
    expect(a.list('corpus')).toEqual([]);
  });

  it('takes several values after a variadic option, and repeats', () => {
    const a = parse('--corpus', 'a.txt', 'b.txt', '--out', 'x', '--corpus', 'c.txt');
    expect(a.list('corpus')).toEqual(['a.txt', 'b.txt', 'c.txt']);
    const b = parse('--out', 'x', '--stop', '\n', '--stop=END');
    expect(b.list('stop')).toEqual(['\n', 'END']);
  });

  it('parses numbers, inline values, negative numbers and booleans', () => {
    const a = parse('--out=x', '--steps', '20', '--lr', '3e-4', '--no-cache', '--json');
    expect(a.number('steps')).toBe(20);
    expect(a.number('lr')).toBeCloseTo(3e-4);
    expect(a.flag('no-cache')).toBe(true);
    expect(a.flag('json')).toBe(true);
    const specs: OptionSpec[] = [{ name: 'seed', kind: 'int', description: 's' }];
    expect(parseCommandArgs('t', specs, ['--seed', '-5']).number('seed')).toBe(-5);
  });

  it('rejects unknown options with a suggestion', () => {
    const msg = usageError(() => parse('--out', 'x', '--stepz', '3'));
    expect(msg).toContain("unknown option '--stepz'");
    expect(msg).toContain('did you mean --steps?');
    expect(usageError(() => parse('--out', 'x', '-q'))).toContain("unknown option '-q'");
  });

  it('rejects numbers that do not parse or are out of range', () => {
    expect(usageError(() => parse('--out', 'x', '--steps', 'abc'))).toContain(
      "--steps expects an integer, got 'abc'",
    );
    expect(usageError(() => parse('--out', 'x', '--steps', '2.5'))).toContain('an integer');
    expect(usageError(() => parse('--out', 'x', '--steps', '0'))).toContain('at least 1');
    expect(usageError(() => parse('--out', 'x', '--lr', '0'))).toContain('greater than 0');
    expect(usageError(() => parse('--out', 'x', '--lr', ''))).toContain('expects a number');
  });

  it('rejects missing values, missing required options, bad choices and stray arguments', () => {
    expect(usageError(() => parse('--out'))).toContain('--out needs a value');
    expect(usageError(() => parse('--out', '--json'))).toContain("got the option '--json'");
    expect(usageError(() => parse('--steps', '3'))).toContain('missing required option --out');
    expect(usageError(() => parse('--out', 'x', '--kind', 'c'))).toContain('one of a, b');
    expect(usageError(() => parse('--out', 'x', 'stray'))).toContain("unexpected argument 'stray'");
    expect(usageError(() => parse('--out', 'x', '--json=yes'))).toContain('takes no value');
  });

  it('finds --help before --', () => {
    expect(wantsHelp(['--out', 'x', '--help'])).toBe(true);
    expect(wantsHelp(['-h'])).toBe(true);
    expect(wantsHelp(['--', '--help'])).toBe(false);
  });

  it('suggests only close names', () => {
    expect(suggest('stpes', ['steps', 'seed'])).toBe('steps');
    expect(suggest('zzzzzz', ['steps', 'seed'])).toBeUndefined();
  });
});

describe('formatHelp', () => {
  it('lists every option with its default', () => {
    const text = formatHelp({
      command: 'test',
      usage: '[options]',
      description: 'd',
      options: SPECS,
    });
    for (const s of SPECS) expect(text).toContain(`--${s.name}`);
    expect(text).toContain('default: 10');
    expect(text).toContain('--backend');
    expect(text).toContain('--json');
  });
});

describe('formatting', () => {
  it('formats durations as h:mm:ss', () => {
    expect(formatDuration(0)).toBe('0:00:00');
    expect(formatDuration(3_723_000)).toBe('1:02:03');
    expect(formatDuration(59_600)).toBe('0:01:00');
    expect(formatDuration(NaN)).toBe('-:--:--');
  });

  it('formats counts and losses', () => {
    expect(formatCount(950)).toBe('950');
    expect(formatCount(12_345)).toBe('12.3k');
    expect(formatCount(4_200_000)).toBe('4.20M');
    expect(formatLoss(1.23456)).toBe('1.2346');
    expect(formatLoss(null)).toBe('—');
  });
});
