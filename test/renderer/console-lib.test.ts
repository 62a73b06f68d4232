/**
 * The console's pure helpers (src/renderer/lib/console.ts, src/common/escapes.ts): the escapes
 * every prompt field understands, presets that change only what they name, and the few-shot
 * answer's default size and the budget bar's offer.
 */
import { describe, expect, it } from 'vitest';
import { escapeField, unescapeField } from '../../src/common/escapes';
import { BUILTIN_PRESETS } from '../../src/server/features/console';
import {
  answerText,
  applyPreset,
  DEFAULT_SAMPLING,
  fittingMaxNewTokens,
  labelAnswerTokens,
  parseStops,
  presetOf,
  stopsText,
  taskMaxNewTokens,
} from '../../src/renderer/lib/console';

describe('field escapes', () => {
  it('\\n, \\t and \\\\ mean a new line, a tab and a backslash; other backslashes stay', () => {
    expect(unescapeField('Review: {input}\\nSentiment: {output}')).toBe(
      'Review: {input}\nSentiment: {output}',
    );
    expect(unescapeField('a\\tb')).toBe('a\tb');
    expect(unescapeField('C:\\\\new')).toBe('C:\\new');
    expect(unescapeField('\\\\n')).toBe('\\n');
    expect(unescapeField('a\\b \\u00e9 \\')).toBe('a\\b \\u00e9 \\');
  });

  it('a real new line and a typed \\n are the same', () => {
    expect(unescapeField('{input}\n{output}')).toBe(unescapeField('{input}\\n{output}'));
  });

  it('escapeField is its inverse', () => {
    for (const s of ['\n\n', 'END', 'a\\nb', '\t|\\', 'C:\\new\n', '\\\\n']) {
      expect(unescapeField(escapeField(s))).toBe(s);
    }
    expect(escapeField('\n\nEND')).toBe('\\n\\nEND');
  });
});

describe('stop sequences', () => {
  it('are comma-separated with the same escapes, shown back the same way', () => {
    expect(parseStops('\\n\\n, END ,, \\t')).toEqual(['\n\n', 'END', '\t']);
    expect(parseStops(stopsText(['\n\n', 'a\\n']))).toEqual(['\n\n', 'a\\n']);
    expect(parseStops(Array.from({ length: 20 }, (_, i) => `s${i}`).join(','))).toHaveLength(16);
  });
});

describe('sampling presets', () => {
  const current = { ...DEFAULT_SAMPLING, stop: ['\n'], maxNewTokens: 7, seed: 5, topK: 40 };

  it('change only what they name: the stops, max new tokens and seed stay', () => {
    const after = applyPreset(current, { temperature: 0 });
    expect(after).toEqual({ ...current, temperature: 0 });
    expect(after.stop).not.toBe(current.stop);
  });

  it('a preset that names the stops sets them', () => {
    expect(applyPreset(current, { stop: ['END'] }).stop).toEqual(['END']);
  });

  it("the app's presets name how tokens are picked, never the stops, length or seed", () => {
    for (const p of BUILTIN_PRESETS) {
      expect(Object.keys(p.sampling).sort()).toEqual([
        'repetitionPenalty',
        'temperature',
        'topK',
        'topP',
      ]);
      // whichever preset came before, the result is the same
      const direct = applyPreset(current, p.sampling);
      for (const q of BUILTIN_PRESETS) {
        expect(applyPreset(applyPreset(current, q.sampling), p.sampling)).toEqual(direct);
      }
    }
  });

  it('a preset saved without stops does not name them', () => {
    expect('stop' in presetOf({ ...current, stop: [] })).toBe(false);
    expect(applyPreset(current, presetOf({ ...DEFAULT_SAMPLING, stop: [] })).stop).toEqual(['\n']);
    expect(presetOf(current).stop).toEqual(['\n']);
  });
});

describe('the few-shot answer size', () => {
  it('the answer is the spaces before {output}, then the label', () => {
    expect(answerText('{input} => {output}', 'positive')).toBe(' positive');
    expect(answerText('Review: {input}\nSentiment:\t{output}\n', 'neg')).toBe('\tneg');
    expect(answerText('{input}\n{output}', 'neg')).toBe('neg');
  });

  it('is the longest label plus a few tokens, and only for few-shot with known labels', () => {
    expect(labelAnswerTokens([2, 5, 3])).toBe(8);
    expect(labelAnswerTokens([2, 5, 3], 1)).toBe(6);
    expect(labelAnswerTokens([])).toBeNull();
    expect(taskMaxNewTokens('few-shot', 8)).toBe(8);
    expect(taskMaxNewTokens('few-shot', null)).toBe(DEFAULT_SAMPLING.maxNewTokens);
    expect(taskMaxNewTokens('completion', 8)).toBe(DEFAULT_SAMPLING.maxNewTokens);
    expect(taskMaxNewTokens('zero-shot', 8)).toBe(DEFAULT_SAMPLING.maxNewTokens);
  });
});

describe("the budget bar's offer", () => {
  it('is the most new tokens that keep the demonstrations the one-token prompt keeps', () => {
    // 128-token context, 120 new tokens (capped at 64): 1 of 4 kept; with one token all 4 fit in 100
    const current = { demosUsed: 1, dropped: 3 };
    expect(fittingMaxNewTokens(current, 120, { context: 128, tokens: 100, demosUsed: 4 })).toBe(28);
  });

  it('is offered only when lowering keeps more demonstrations', () => {
    const probe = { context: 128, tokens: 100, demosUsed: 4 };
    expect(fittingMaxNewTokens({ demosUsed: 4, dropped: 0 }, 120, probe)).toBeNull();
    expect(
      fittingMaxNewTokens({ demosUsed: 2, dropped: 2 }, 120, { ...probe, demosUsed: 2 }),
    ).toBeNull();
    expect(fittingMaxNewTokens({ demosUsed: 1, dropped: 3 }, 20, probe)).toBeNull();
    expect(
      fittingMaxNewTokens({ demosUsed: 1, dropped: 3 }, 120, { ...probe, tokens: 128 }),
    ).toBeNull();
  });
});
