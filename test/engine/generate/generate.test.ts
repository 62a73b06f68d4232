/**
 * Generation and scoring on a tiny char model (briefly trained, so it never emits end-of-text):
 * the KV cache changes nothing, sampling is seeded, top-k/top-p/stop/abort behave, the stream adds
 * up to the result, and scores equal a direct log-softmax of the full forward.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/engine/tf';
import { initBackend } from '../../../src/engine/backend';
import {
  generate,
  generateTokens,
  type GeneratedToken,
  type GenerationResult,
  type SamplingOptions,
} from '../../../src/engine/generate';
import { GPT } from '../../../src/engine/model/gpt';
import { scoreBatch, scoreContinuation, scoreText } from '../../../src/engine/score';
import type { CharTokenizer } from '../../../src/engine/tokenizer';
import { AdamW } from '../../../src/engine/train/optimizer';
import { trainStep } from '../../../src/engine/train/pretrain';
import { Rng } from '../../../src/engine/util/rng';
import { charTokenizer, logSoftmax64, randomWeights, tinyConfig, toyCorpus } from '../helpers';

const BLOCK = 16;
let tok: CharTokenizer;
let model: GPT;

beforeAll(async () => {
  await initBackend('wasm');
  tok = charTokenizer();
  const cfg = tinyConfig({ vocabSize: tok.vocabSize, blockSize: BLOCK, nLayer: 2, nEmbd: 32 });
  model = new GPT(cfg, randomWeights(cfg, 3, 0.1));
  // A few dozen steps on the toy text: the distributions stay broad, and <|endoftext|> (never in
  // the data) becomes improbable, so runs end by length and cross the block size.
  const data = Int32Array.from(tok.encode(toyCorpus(4)));
  const opt = new AdamW(model.params, {
    beta1: 0.9,
    beta2: 0.99,
    eps: 1e-8,
    weightDecay: 0,
    gradClip: 1,
  });
  const rng = new Rng(5);
  for (let step = 0; step < 40; step++) {
    await trainStep(model, opt, data, rng, { batchSize: 8, gradAccum: 1, seed: 1 }, step, 1e-2);
  }
  opt.dispose();
});
afterAll(() => model.dispose());

const PROMPT = 'the cat';

async function run(
  options: Partial<SamplingOptions>,
  prompt = PROMPT,
  signal?: AbortSignal,
  onToken?: (t: GeneratedToken, i: number) => void,
): Promise<{ result: GenerationResult; tokens: GeneratedToken[] }> {
  const tokens: GeneratedToken[] = [];
  const result = await generate(
    model,
    tok,
    prompt,
    { maxNewTokens: 40, seed: 1, ...options },
    (t) => {
      tokens.push(t);
      onToken?.(t, tokens.length);
    },
    signal,
  );
  return { result, tokens };
}

describe('KV cache', () => {
  const settings: Array<[string, Partial<SamplingOptions>]> = [
    ['greedy', { temperature: 0 }],
    ['temperature 1', { temperature: 1 }],
    ['top-k 5', { temperature: 1, topK: 5 }],
    ['top-p 0.9', { temperature: 0.9, topP: 0.9 }],
    ['repetition penalty', { temperature: 0.8, repetitionPenalty: 1.3 }],
  ];
  for (const [name, o] of settings) {
    it(`gives the same tokens as no cache: ${name}, ${PROMPT.length} + 40 tokens > block ${BLOCK}`, async () => {
      const cached = await run({ ...o, useCache: true });
      const plain = await run({ ...o, useCache: false });
      expect(cached.result.stoppedBy).toBe('length');
      expect(cached.result.ids).toHaveLength(40); // the window slid several times
      expect(cached.result.ids).toEqual(plain.result.ids);
      expect(cached.result.text).toBe(plain.result.text);
      // and the same distributions, not just the same picks
      cached.tokens.forEach((t, i) => {
        expect(Math.abs(t.logprob - plain.tokens[i]!.logprob), `token ${i}`).toBeLessThan(1e-4);
      });
    });
  }

  it('gives the same tokens as no cache after a prompt longer than the block', async () => {
    const prompt = 'to be or not to be, that is the question'; // 40 tokens > 16
    expect(tok.encode(prompt).length).toBeGreaterThan(2 * BLOCK);
    for (const o of [{ temperature: 0 }, { temperature: 1, seed: 9 }]) {
      const cached = await run({ ...o, maxNewTokens: 20 }, prompt);
      const plain = await run({ ...o, maxNewTokens: 20, useCache: false }, prompt);
      expect(cached.result.ids).toHaveLength(20);
      expect(cached.result.ids).toEqual(plain.result.ids);
    }
  });

  it('every step’s logits match a full forward over the same window', async () => {
    // replay the greedy run with forwardCached(…, null) over the window generate() documents
    const { result, tokens } = await run({ temperature: 0, topAlternatives: 3, maxNewTokens: 30 });
    const ids = [...tok.encode(PROMPT)];
    let start = 0;
    for (const [i, t] of tokens.entries()) {
      if (ids.length - start > BLOCK) start = ids.length - Math.floor(BLOCK / 2);
      const x = tf.tensor2d([ids.slice(start)], undefined, 'int32');
      const out = model.forwardCached(x, null, true);
      const lp = logSoftmax64((await out.logits.data()) as Float32Array);
      tf.dispose([x, out.logits, ...out.cache.k, ...out.cache.v]);
      let best = 0;
      for (let v = 1; v < lp.length; v++) if (lp[v]! > lp[best]!) best = v;
      expect(t.id, `token ${i}`).toBe(best);
      expect(Math.abs(t.logprob - lp[best]!)).toBeLessThan(1e-4);
      expect(t.alternatives?.map((a) => a.id)[0]).toBe(best);
      expect(t.alternatives).toHaveLength(3);
      ids.push(t.id);
    }
    expect(ids.slice(tok.encode(PROMPT).length)).toEqual(result.ids);
  });
});

describe('sampling', () => {
  it('same seed → same text; another seed → another text', async () => {
    const a = await run({ temperature: 1, seed: 11 });
    const b = await run({ temperature: 1, seed: 11 });
    const c = await run({ temperature: 1, seed: 12 });
    expect(b.result.ids).toEqual(a.result.ids);
    expect(b.result.text).toBe(a.result.text);
    expect(c.result.ids).not.toEqual(a.result.ids);
  });

  it('top-k 1 is greedy, whatever the temperature and seed', async () => {
    const greedy = await run({ temperature: 0 });
    for (const seed of [1, 2]) {
      const k1 = await run({ temperature: 1.5, topK: 1, seed });
      expect(k1.result.ids).toEqual(greedy.result.ids);
    }
  });

  it('top-k only ever picks among the k most likely tokens', async () => {
    const { tokens } = await run({ temperature: 2, topK: 3, topAlternatives: 3, seed: 4 });
    for (const t of tokens) expect(t.alternatives!.map((a) => a.id)).toContain(t.id);
  });

  it('streams tokens whose text adds up to the result', async () => {
    const { result, tokens } = await run({ temperature: 1, seed: 3 });
    expect(tokens.map((t) => t.id)).toEqual(result.ids);
    expect(tokens.map((t) => t.text).join('')).toBe(result.text);
    expect(result.text).toBe(tok.decode(result.ids));
    for (const t of tokens) expect(t.logprob).toBeLessThanOrEqual(0);
  });

  it('a model with more embedding rows than tokens samples only tokens the tokenizer has', async () => {
    // padded to a round vocabulary, as some Hub checkpoints are; the padding rows made likeliest
    const cfg = tinyConfig({ vocabSize: tok.vocabSize + 8, blockSize: BLOCK, nEmbd: 16 });
    const w = randomWeights(cfg, 4, 0.1);
    const wte = w.get('wte.weight')!;
    for (let r = tok.vocabSize; r < cfg.vocabSize; r++) wte.fill(3, r * 16, (r + 1) * 16);
    const padded = new GPT(cfg, w);
    try {
      for (const o of [{ temperature: 0 }, { temperature: 2, seed: 1 }, { topK: 4, seed: 2 }]) {
        const r = await generate(padded, tok, PROMPT, { maxNewTokens: 12, ...o });
        expect(r.ids.length).toBeGreaterThan(0);
        for (const id of r.ids) expect(id).toBeLessThan(tok.vocabSize);
      }
    } finally {
      padded.dispose();
    }
  });

  it('an empty prompt starts from <|endoftext|>', async () => {
    const { result } = await run({ temperature: 0, maxNewTokens: 5 }, '');
    expect(result.ids).toHaveLength(5);
  });
});

describe('stop sequences', () => {
  it('cut the text before the first occurrence and end with stoppedBy "stop"', async () => {
    const full = await run({ temperature: 1, seed: 7 });
    const text = full.result.text;
    // a two-character stop string (two tokens) from the middle of the text
    const stop = text.slice(12, 14);
    const cut = text.indexOf(stop);
    const stopped = await run({ temperature: 1, seed: 7, stop: [stop] });
    expect(stopped.result.stoppedBy).toBe('stop');
    expect(stopped.result.text).toBe(text.slice(0, cut));
    expect(stopped.result.text).not.toContain(stop);
    // a stop string that never appears changes nothing
    const never = await run({ temperature: 1, seed: 7, stop: ['\u{1F600}', ''] });
    expect(never.result).toEqual(full.result);
  });

  it('stream exactly the result text, never a part of the stop string', async () => {
    const full = await run({ temperature: 1, seed: 7 });
    for (const at of [5, 12, 20]) {
      const stop = full.result.text.slice(at, at + 3);
      const stopped = await run({ temperature: 1, seed: 7, stop: [stop] });
      expect(stopped.result.stoppedBy).toBe('stop');
      expect(stopped.tokens.map((t) => t.text).join(''), `stop ${JSON.stringify(stop)}`).toBe(
        stopped.result.text,
      );
    }
  });

  it('release text held back as a possible stop string once it is not one', async () => {
    const full = await run({ temperature: 1, seed: 7 });
    const text = full.result.text;
    // stop strings that start like pieces of the text (including its very end) but never occur
    const stops = [
      text.slice(3, 5) + '\u{1F600}',
      text.slice(-2) + '\u{1F600}',
      text.slice(-1) + '#',
    ];
    const r = await run({ temperature: 1, seed: 7, stop: stops });
    expect(r.result).toEqual(full.result);
    expect(r.tokens.map((t) => t.text).join('')).toBe(text);
    // some token streamed no text (held back), and a later one streamed more than one character
    expect(r.tokens.some((t) => t.text === '')).toBe(true);
    expect(r.tokens.some((t) => t.text.length > 1)).toBe(true);
  });
});

describe('abort', () => {
  it('an abort during generation stops after the current token', async () => {
    const ac = new AbortController();
    const { result, tokens } = await run({ temperature: 1 }, PROMPT, ac.signal, (_, i) => {
      if (i === 3) ac.abort();
    });
    expect(result.stoppedBy).toBe('cancelled');
    expect(tokens).toHaveLength(3);
    expect(result.ids).toHaveLength(3);
    expect(tokens.map((t) => t.text).join('')).toBe(result.text);
  });

  it('an already-aborted signal generates nothing', async () => {
    const ac = new AbortController();
    ac.abort();
    const { result, tokens } = await run({ temperature: 1 }, PROMPT, ac.signal);
    expect(result).toEqual({ ids: [], text: '', stoppedBy: 'cancelled' });
    expect(tokens).toEqual([]);
  });

  it('generateTokens releases its KV cache when the consumer stops early', async () => {
    const before = tf.memory().numTensors;
    const it = generateTokens(model, tok, tok.encode(PROMPT), { temperature: 0, maxNewTokens: 20 });
    await it.next();
    await it.next();
    await it.return(undefined as never);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('scoring', () => {
  /** log p(seq[t+1] | seq[..t]) from one full forward (seq.length ≤ block). */
  async function direct(seq: number[]): Promise<number[]> {
    const x = tf.tensor2d([seq], undefined, 'int32');
    const out = model.forwardCached(x, null, false);
    const logits = (await out.logits.data()) as Float32Array;
    tf.dispose([x, out.logits, ...out.cache.k, ...out.cache.v]);
    const V = model.config.vocabSize;
    return seq.slice(1).map((next, t) => logSoftmax64(logits.subarray(t * V, (t + 1) * V))[next]!);
  }

  it('scoreText = log-softmax of the full forward after <|endoftext|>, to 1e-5', async () => {
    const text = 'a cat sat.';
    const ids = tok.encode(text);
    const r = await scoreText(model, tok, text);
    const want = await direct([tok.eosId!, ...ids]);
    expect(r.tokens).toEqual(ids);
    expect(r.logprobs).toHaveLength(ids.length);
    r.logprobs.forEach((lp, i) => expect(Math.abs(lp - want[i]!), `token ${i}`).toBeLessThan(1e-5));
    expect(r.sum).toBeCloseTo(
      r.logprobs.reduce((a, b) => a + b, 0),
      10,
    );
    expect(r.mean).toBeCloseTo(r.sum / ids.length, 10);
  });

  it('scoreContinuation scores only the continuation, given the prompt', async () => {
    const prompt = 'the dog';
    const cont = ' sat on';
    const r = await scoreContinuation(model, tok, prompt, cont);
    const p = tok.encode(prompt);
    const c = tok.encode(cont);
    const want = (await direct([...p, ...c])).slice(p.length - 1);
    expect(r.tokens).toEqual(c);
    r.logprobs.forEach((lp, i) => expect(Math.abs(lp - want[i]!), `token ${i}`).toBeLessThan(1e-5));
    expect(r.sum).toBeCloseTo(
      want.reduce((a, b) => a + b, 0),
      4,
    );
  });

  it('batched items of different lengths score as they do alone', async () => {
    const items = [
      { context: tok.encode('the'), target: tok.encode(' cat sat') },
      { context: tok.encode('a'), target: tok.encode(' dog') },
      { context: tok.encode('to be or'), target: tok.encode(' not to be, that is the question') },
      { context: tok.encode('a'), target: [] },
    ];
    const together = await scoreBatch(model, items, 3);
    for (const [i, item] of items.entries()) {
      const [alone] = await scoreBatch(model, [item]);
      expect(together[i]!.logprobs).toHaveLength(item.target.length);
      together[i]!.logprobs.forEach((lp, t) => expect(lp).toBeCloseTo(alone!.logprobs[t]!, 5));
    }
    expect(together[3]).toEqual({ tokens: [], logprobs: [], sum: 0, mean: 0 });
  });

  it('a text longer than the block gets a logprob for every token, each with ≥ block/2 context', async () => {
    const text = 'to be or not to be, that is the question; whether tis nobler';
    const ids = tok.encode(text);
    expect(ids.length).toBeGreaterThan(3 * BLOCK);
    const r = await scoreText(model, tok, text);
    expect(r.logprobs).toHaveLength(ids.length);
    expect(r.logprobs.every(Number.isFinite)).toBe(true);
    expect(r.sum).toBeCloseTo(
      r.logprobs.reduce((a, b) => a + b, 0),
      8,
    );

    // every window start: the logprob of each position it covers
    const seq = [tok.eosId!, ...ids];
    const byStart = new Map<number, number[]>();
    for (let s = 0; s + 1 < seq.length; s++) byStart.set(s, await direct(seq.slice(s, s + BLOCK)));
    const half = Math.floor(BLOCK / 2);
    r.logprobs.forEach((lp, i) => {
      const pos = i + 1; // position in seq
      // windows that contain pos with at least half a block (or everything) before it
      const ok = [...byStart].some(([s, lps]) => {
        if (!(s < pos && pos < s + BLOCK && pos - s >= Math.min(pos, half))) return false;
        return Math.abs(lps[pos - s - 1]! - lp) < 1e-5;
      });
      expect(ok, `token ${i} (logprob ${lp})`).toBe(true);
    });
    // the first block's tokens see the whole prefix
    const first = await direct(seq.slice(0, BLOCK));
    first.forEach((lp, t) => expect(Math.abs(r.logprobs[t]! - lp)).toBeLessThan(1e-5));
  });

  it('refuses an empty context', async () => {
    await expect(scoreBatch(model, [{ context: [], target: [1] }])).rejects.toThrow(/context/);
  });
});
