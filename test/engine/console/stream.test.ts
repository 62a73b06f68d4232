/**
 * Streaming and stop in the engine: a stop requested from a timer (as an IPC message or Ctrl-C
 * arrives) ends a long generation early, because generation yields to the event loop.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { initBackend } from '../../../src/engine/backend';
import { generateTokens } from '../../../src/engine/generate';
import { GPT } from '../../../src/engine/model/gpt';
import type { CharTokenizer } from '../../../src/engine/tokenizer';
import { charTokenizer, randomWeights, tinyConfig } from '../helpers';

let tok: CharTokenizer;
let model: GPT;

beforeAll(async () => {
  await initBackend('wasm');
  tok = charTokenizer('abcdefghijklmnopqrstuvwxyz .');
  const cfg = tinyConfig({ vocabSize: tok.vocabSize, blockSize: 32 });
  model = new GPT(cfg, randomWeights(cfg, 2, 0.3));
});
afterAll(() => model.dispose());

it('a timer can stop a long generation while it streams', async () => {
  const c = new AbortController();
  let streamed = 0;
  // a view of the tokenizer without end-of-text, so only the stop can end the run early
  const noEos = Object.create(tok, { eosId: { value: undefined } }) as CharTokenizer;
  const it = generateTokens(
    model,
    noEos,
    tok.encode('the cat'),
    { maxNewTokens: 1_000_000 },
    c.signal,
  );
  setTimeout(() => c.abort(), 50);
  for (;;) {
    const r = await it.next();
    if (r.done) {
      expect(r.value.stoppedBy).toBe('cancelled');
      expect(r.value.ids.length).toBe(streamed);
      break;
    }
    streamed++;
  }
  expect(streamed).toBeGreaterThan(0);
  expect(streamed).toBeLessThan(1_000_000);
});
