/**
 * The host's cache of loaded models: a second request on a model does not reload it, the LRU stays
 * within its byte budget and disposes what it evicts (tf.memory drops back), a model in use is
 * disposed only once released, and a model rewritten in place is loaded afresh.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { loadModelDir, saveModelDir } from '../../src/engine/checkpoint/modelDir';
import { GPT } from '../../src/engine/model/gpt';
import { scoreText } from '../../src/engine/score';
import { kernelHeap } from '../../src/engine/weights/kernels';
import {
  DEFAULT_STORED_CACHE_BYTES,
  defaultModelCacheBytes,
  ModelCache,
  modelBytes,
} from '../../src/server/modelCache';
import { charTokenizer, randomWeights, removeDir, tempDir, tinyConfig } from '../engine/helpers';

let ws: string;
const dirs: string[] = [];
let oneModel = 0; // bytes of one tiny model's weights

beforeAll(async () => {
  await initBackend('wasm');
  ws = await tempDir('gpt-studio-modelcache-');
  const tok = charTokenizer();
  const cfg = tinyConfig({ vocabSize: tok.vocabSize });
  for (let i = 0; i < 3; i++) {
    const model = new GPT(cfg, randomWeights(cfg, 10 + i));
    const dir = path.join(ws, `m${i}`);
    await saveModelDir(dir, model, tok);
    model.dispose();
    dirs.push(dir);
  }
  const probe = await loadModelDir(dirs[0]!);
  oneModel = modelBytes(probe);
  await scoreText(probe.model, probe.tokenizer, TEXT); // the ops' per-length caches, once
  probe.model.dispose();
});
afterAll(() => removeDir(ws));

/** A cache over the real loader that counts loads per folder. */
function cache(budgetBytes: number, stored?: { budget: number; weights: 'f16' | 'q8' }) {
  const loads: string[] = [];
  const c = new ModelCache({
    budgetBytes,
    ...(stored ? { storedBudgetBytes: stored.budget } : {}),
    load: async (dir) => {
      loads.push(path.basename(dir));
      return loadModelDir(dir, stored ? { weights: stored.weights } : {});
    },
  });
  return { c, loads };
}

const bytes = () => tf.memory().numBytes;
const TEXT = 'the cat sat';

describe('ModelCache', () => {
  it('a second acquire of the same model does not reload it', async () => {
    const { c, loads } = cache(10 * oneModel);
    const a = await c.acquire(dirs[0]!);
    const s1 = await scoreText(a.model, a.tokenizer, TEXT);
    a.release();
    const b = await c.acquire(dirs[0]!);
    expect(b.model).toBe(a.model);
    expect((await scoreText(b.model, b.tokenizer, TEXT)).sum).toBe(s1.sum);
    b.release();
    expect(loads).toEqual(['m0']);
    expect(c.stats()).toMatchObject({ entries: 1, loads: 1, hits: 1, bytes: oneModel });
    c.clear();
  });

  it('two requests at once share one load', async () => {
    const { c, loads } = cache(10 * oneModel);
    const [a, b] = await Promise.all([c.acquire(dirs[1]!), c.acquire(dirs[1]!)]);
    expect(a.model).toBe(b.model);
    expect(loads).toEqual(['m1']);
    a.release();
    b.release();
    c.clear();
  });

  it('evicts least-recently-used models past the budget and disposes them', async () => {
    const base = bytes();
    const { c, loads } = cache(2 * oneModel); // room for two
    for (const d of [dirs[0]!, dirs[1]!]) (await c.acquire(d)).release();
    expect(bytes() - base).toBe(2 * oneModel);
    (await c.acquire(dirs[0]!)).release(); // m0 is now the most recently used
    const m1 = await c.acquire(dirs[1]!);
    const m1Model = m1.model;
    m1.release();
    (await c.acquire(dirs[0]!)).release();
    (await c.acquire(dirs[2]!)).release(); // m1 is the least recently used: it goes
    expect(loads).toEqual(['m0', 'm1', 'm2']);
    expect(c.stats()).toMatchObject({ entries: 2, bytes: 2 * oneModel, evictions: 1 });
    expect(m1Model.params.get('wte.weight')!.isDisposed).toBe(true);
    expect(bytes() - base).toBe(2 * oneModel);
    (await c.acquire(dirs[0]!)).release(); // still cached
    expect(loads).toHaveLength(3);
    c.clear();
    expect(bytes()).toBe(base);
  });

  it('a model in use is evicted but disposed only once released', async () => {
    const base = bytes();
    const { c } = cache(oneModel); // room for one
    const held = await c.acquire(dirs[0]!);
    (await c.acquire(dirs[1]!)).release(); // evicts m0 from the cache while it is leased
    expect(c.stats()).toMatchObject({ entries: 1, evictions: 1 });
    expect(held.model.params.get('wte.weight')!.isDisposed).toBe(false);
    // the lease still works, e.g. a generation that outlives the eviction
    const r = await scoreText(held.model, held.tokenizer, TEXT);
    expect(Number.isFinite(r.sum)).toBe(true);
    expect(bytes() - base).toBe(2 * oneModel);
    held.release();
    expect(held.model.params.get('wte.weight')!.isDisposed).toBe(true);
    expect(bytes() - base).toBe(oneModel);
    held.release(); // a second release changes nothing
    expect(bytes() - base).toBe(oneModel);
    c.clear();
    expect(bytes()).toBe(base);
  });

  it('a model larger than the whole budget is used once and disposed on release', async () => {
    const base = bytes();
    const { c, loads } = cache(oneModel - 1);
    const a = await c.acquire(dirs[0]!);
    expect(a.model.params.get('wte.weight')!.isDisposed).toBe(false);
    a.release();
    expect(bytes()).toBe(base);
    (await c.acquire(dirs[0]!)).release();
    expect(loads).toEqual(['m0', 'm0']);
  });

  it('a model rewritten in place (new weights file) is loaded afresh, the old one disposed', async () => {
    const base = bytes();
    const dir = path.join(ws, 'retrained');
    await fs.cp(dirs[0]!, dir, { recursive: true });
    const { c, loads } = cache(10 * oneModel);
    const old = await c.acquire(dir);
    old.release();
    const tok = charTokenizer();
    const cfg = tinyConfig({ vocabSize: tok.vocabSize });
    const model = new GPT(cfg, randomWeights(cfg, 99));
    await saveModelDir(dir, model, tok);
    model.dispose();
    const later = new Date(Date.now() + 5000);
    await fs.utimes(path.join(dir, 'model.safetensors'), later, later);
    const fresh = await c.acquire(dir);
    expect(fresh.model).not.toBe(old.model);
    expect(loads).toEqual(['retrained', 'retrained']);
    expect(old.model.params.get('wte.weight')!.isDisposed).toBe(true);
    fresh.release();
    expect(c.stats().entries).toBe(1);
    c.clear();
    expect(bytes()).toBe(base);
  });

  it('a model disposed by mistake behind its back is loaded again, not handed out dead', async () => {
    const { c, loads } = cache(10 * oneModel);
    const a = await c.acquire(dirs[2]!);
    a.model.dispose();
    a.release();
    const b = await c.acquire(dirs[2]!);
    expect(b.model.params.get('wte.weight')!.isDisposed).toBe(false);
    expect(loads).toEqual(['m2', 'm2']);
    b.release();
    c.clear();
  });

  it('weights held as q8 count against the kernel memory budget, not the float32 one', async () => {
    const base = bytes();
    const heap = kernelHeap().bytesInUse;
    // no room for float32 weights at all, room for two q8 models in the kernels' memory
    const q8 = (budget: number) => cache(0, { budget, weights: 'q8' });
    const { c, loads } = q8(1024 ** 2);
    const a = await c.acquire(dirs[0]!);
    const stored = a.model.weightBytes();
    a.release();
    (await c.acquire(dirs[0]!)).release();
    (await c.acquire(dirs[1]!)).release();
    expect(loads).toEqual(['m0', 'm1']);
    expect(c.stats()).toMatchObject({ entries: 2, bytes: 0, storedBytes: 2 * stored });
    c.clear();
    expect(kernelHeap().bytesInUse).toBe(heap);
    // a stored budget smaller than the model: used once, as for float32
    const small = q8(stored - 1);
    (await small.c.acquire(dirs[0]!)).release();
    (await small.c.acquire(dirs[0]!)).release();
    expect(small.loads).toEqual(['m0', 'm0']);
    expect(kernelHeap().bytesInUse).toBe(heap);
    expect(bytes()).toBe(base);
    expect(new ModelCache({ budgetBytes: 0, load: loadModelDir }).storedBudgetBytes).toBe(
      DEFAULT_STORED_CACHE_BYTES,
    );
  });

  it('the default budget: 1 GiB, a quarter of a smaller backend, or the environment', () => {
    expect(defaultModelCacheBytes(4 * 1024 ** 3, {})).toBe(1024 ** 3);
    expect(defaultModelCacheBytes(2 * 1024 ** 3, {})).toBe(512 * 1024 ** 2);
    expect(defaultModelCacheBytes(0, {})).toBe(1024 ** 3);
    expect(defaultModelCacheBytes(undefined, { GPT_STUDIO_MODEL_CACHE_MB: '64' })).toBe(
      64 * 1024 ** 2,
    );
    expect(defaultModelCacheBytes(undefined, { GPT_STUDIO_MODEL_CACHE_MB: '0' })).toBe(0);
  });
});
