/**
 * Prompt assembly with the model's tokenizer: templates, the query's answer prefix, the token
 * budget, and truncation (the oldest demonstrations go first; the console says how many).
 */
import { describe, expect, it } from 'vitest';
import {
  assemblePrompt,
  encodeLenient,
  fillTemplate,
  promptBudget,
  splitQuery,
  tokenPiece,
} from '../../../src/engine/console/prompt';
import { loadGpt2 } from '../tokenizer/helpers';
import { charTokenizer } from '../helpers';

const tok = charTokenizer('abcdefghijklmnopqrstuvwxyz =>-:\n.,!?');
const demos = [
  { input: 'one', output: 'a' },
  { input: 'two', output: 'b' },
  { input: 'three', output: 'c' },
  { input: 'four', output: 'd' },
];

describe('templates', () => {
  it('fills {input} and {output} only', () => {
    expect(fillTemplate('Q: {input} A: {output} {other}', { input: 'x', output: 'y' })).toBe(
      'Q: x A: y {other}',
    );
  });
  it("moves the query's trailing spaces to the answer", () => {
    expect(splitQuery('{input} => {output}', 'cat')).toEqual({
      context: 'cat =>',
      answerPrefix: ' ',
    });
    expect(splitQuery('Review: {input}\nSentiment:{output}', 'ok').context).toBe(
      'Review: ok\nSentiment:',
    );
  });
  it('budget: the context less the answer room, at most half', () => {
    expect(promptBudget(128, 10)).toBe(118);
    expect(promptBudget(128, 500)).toBe(64);
    expect(promptBudget(128, 0)).toBe(128);
  });
});

describe('assemblePrompt', () => {
  it('completion is the text itself; zero-shot fills the template', () => {
    const c = assemblePrompt(tok, 64, { mode: 'completion', text: 'hello there' });
    expect(c.prompt).toBe('hello there');
    expect(c.ids).toEqual(tok.encode('hello there'));
    const z = assemblePrompt(tok, 64, {
      mode: 'zero-shot',
      text: 'cheese',
      instruction: 'translate english to french: {input} =>',
    });
    expect(z.prompt).toBe('translate english to french: cheese =>');
    expect(() =>
      assemblePrompt(tok, 64, { mode: 'zero-shot', text: 'x', instruction: 'no field' }),
    ).toThrow('template: the template needs {input}');
  });

  it('few-shot: instruction, demonstrations in order, then the query', () => {
    const a = assemblePrompt(tok, 200, {
      mode: 'few-shot',
      text: 'five',
      instruction: 'count:',
      format: '{input} -> {output}',
      demos: demos.slice(0, 2),
    });
    expect(a.prompt).toBe('count:\none -> a\ntwo -> b\nfive ->');
    expect(a.parts.map((p) => p.kind)).toEqual(['instruction', 'demo', 'demo', 'query']);
    expect(a.parts.reduce((s, p) => s + p.tokens, 0)).toBe(a.ids.length);
    expect(a.ids.length).toBe(a.prompt.length); // one token per character
    expect(a.dropped).toBe(0);
    expect(a.demosUsed).toBe(2);
    expect(() =>
      assemblePrompt(tok, 64, { mode: 'few-shot', text: 'x', format: '{input} only' }),
    ).toThrow('format: the template needs {output}');
  });

  it('drops the oldest demonstrations first, as few as needed', () => {
    const spec = { mode: 'few-shot' as const, text: 'five', format: '{input} => {output}', demos };
    const full = assemblePrompt(tok, 1000, spec);
    expect(full.prompt).toBe('one => a\ntwo => b\nthree => c\nfour => d\nfive =>');
    // "three => c\n" is 11 characters, "four => d\n" 10, "five =>" 7: 28 keeps the newest two
    const cut = assemblePrompt(tok, 30, spec, 2);
    expect(cut.budget).toBe(28);
    expect(cut.prompt).toBe('three => c\nfour => d\nfive =>');
    expect(cut.ids.length).toBeLessThanOrEqual(28);
    expect(cut.dropped).toBe(2);
    expect(cut.demosUsed).toBe(2);
    expect(cut.overflow).toBe(false);
    // one token short of the newest two: only one stays; with "two => b\n" (9) more, three do
    expect(assemblePrompt(tok, 27, spec).dropped).toBe(3);
    expect(assemblePrompt(tok, 37, spec).dropped).toBe(1);
    // nothing fits: every demonstration goes, and the query alone is over budget
    const none = assemblePrompt(tok, 8, spec, 4);
    expect(none.demosUsed).toBe(0);
    expect(none.dropped).toBe(4);
    expect(none.overflow).toBe(true);
  });

  it("counts with the model's real tokenizer (GPT-2 BPE)", async () => {
    const gpt2 = await loadGpt2();
    const spec = {
      mode: 'few-shot' as const,
      text: 'The plot was dull.',
      format: 'Review: {input}\nSentiment: {output}',
      separator: '\n\n',
      demos: [
        { input: 'A wonderful film.', output: 'positive' },
        { input: 'Wasted two hours.', output: 'negative' },
      ],
    };
    const a = assemblePrompt(gpt2, 1024, spec);
    expect(a.ids).toEqual(gpt2.encode(a.prompt));
    expect(a.prompt.endsWith('Review: The plot was dull.\nSentiment:')).toBe(true);
    // a budget just under the full prompt drops exactly the oldest demonstration
    const b = assemblePrompt(gpt2, a.ids.length - 1, spec);
    expect(b.dropped).toBe(1);
    expect(b.prompt.startsWith('Review: Wasted two hours.')).toBe(true);
    expect(b.ids.length).toBeLessThanOrEqual(a.ids.length - 1);
  });

  it('shows a token that is part of a character as its bytes', async () => {
    const gpt2 = await loadGpt2();
    const ids = gpt2.encode('😀');
    expect(ids.length).toBeGreaterThan(1);
    const pieces = ids.map((id) => tokenPiece(gpt2, id));
    expect(pieces.join(' ')).toMatch(/^<F0 9F[ 0-9A-F]*>/);
    expect(tokenPiece(gpt2, gpt2.encode(' cat')[0]!)).toBe(' cat');
    expect(tokenPiece(tok, tok.encode('a')[0]!)).toBe('a');
    expect(tokenPiece(tok, 10_000)).toBe('');
  });

  it('leaves out characters a character-level vocabulary lacks, and names them', () => {
    const e = encodeLenient(tok, 'café!');
    expect(e.text).toBe('caf!');
    expect(e.unknown).toEqual(['é']);
    const a = assemblePrompt(tok, 64, { mode: 'completion', text: 'naïve café' });
    expect(a.prompt).toBe('nave caf');
    expect(a.unknown.sort()).toEqual(['é', 'ï']);
  });
});
