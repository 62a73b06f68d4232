/** Formatting for people: sizes in binary units labelled as such, probabilities in plain decimals. */
import { describe, expect, it } from 'vitest';
import { formatBytes, formatProbability } from '../../src/common/format';

describe('formatBytes', () => {
  it('labels binary units KiB, MiB and GiB', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(20 * 1024 ** 2)).toBe('20.0 MiB');
    expect(formatBytes(1.25 * 1024 ** 3)).toBe('1.25 GiB');
    expect(formatBytes(Infinity)).toBe('unlimited');
  });
});

describe('formatProbability', () => {
  it('prints small probabilities as plain decimals, never in exponent notation', () => {
    expect(formatProbability(0.0005)).toBe('0.05%');
    expect(formatProbability(0.000534)).toBe('0.053%');
    expect(formatProbability(0.0000031)).toBe('0.00031%');
    expect(formatProbability(0.005)).toBe('0.5%');
    expect(formatProbability(0.034)).toBe('3.4%');
    expect(formatProbability(0.01)).toBe('1%');
    for (let e = -8; e <= 0; e += 0.25) {
      expect(formatProbability(10 ** e)).not.toMatch(/e/i);
    }
  });

  it('rounds large ones to whole percents and bounds the ends', () => {
    expect(formatProbability(0.42)).toBe('42%');
    expect(formatProbability(0.9999)).toBe('100%');
    expect(formatProbability(1)).toBe('100%');
    expect(formatProbability(0)).toBe('0%');
    expect(formatProbability(Number.NaN)).toBe('0%');
    expect(formatProbability(1e-12)).toBe('<0.0001%');
  });
});
