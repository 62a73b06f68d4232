import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelInfo } from '../../src/common/api';
import { trainTokenizer } from '../../src/engine/tokenizer';
import { listModels, paramsFromConfig } from '../../src/server/models';
import type { HostContext } from '../../src/server/context';

let dir: string;
const config = (over: Record<string, unknown> = {}) => ({
  model_type: 'gpt2',
  vocab_size: 100,
  n_positions: 16,
  n_embd: 8,
  n_layer: 2,
  n_head: 2,
  ...over,
});

async function* text() {
  yield 'the cat sat on the mat; the dog sat on the log. '.repeat(20);
}

async function model(rel: string, cfg: Record<string, unknown>, tokenizer?: 'char' | 'bpe') {
  const d = path.join(dir, rel);
  await fs.mkdir(d, { recursive: true });
  await fs.writeFile(path.join(d, 'config.json'), JSON.stringify(cfg));
  if (tokenizer) {
    const t = await trainTokenizer({ kind: tokenizer, vocabSize: 270, corpus: text() });
    await t.save(d);
  }
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'models-'));
  await model('ws/runs/alpha', config(), 'bpe');
  await model('ws/finetunes/sent', {
    ...config(),
    id2label: { '1': 'positive', '0': 'negative' },
    gpt_studio: { task: 'classification' },
  });
  await model('ws/models/gpt2', config({ vocab_size: 50257 }), 'bpe');
  // GPT-2's own layout: vocab.json + merges.txt only
  await fs.rm(path.join(dir, 'ws/models/gpt2/tokenizer.json'));
  await model('res/models/austen', config(), 'char');
  await fs.mkdir(path.join(dir, 'ws/runs/not-a-model'), { recursive: true });
  await model('ws/runs/broken', config());
  await fs.writeFile(path.join(dir, 'ws/runs/broken/config.json'), '{ not json');
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('models.list', () => {
  it('counts GPT-2 parameters from a config (124M for gpt2)', () => {
    const gpt2 = { vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12 };
    expect(paramsFromConfig(gpt2)).toBe(124_439_808);
  });

  it('finds runs, fine-tunes, imported and bundled models; skips folders without a readable config', async () => {
    const ctx = {
      workspace: path.join(dir, 'ws'),
      runsDir: path.join(dir, 'ws/runs'),
      resourcesDir: path.join(dir, 'res'),
    } as HostContext;
    const models = await listModels(ctx);
    const by = (n: string) => models.find((m) => m.name === n) as ModelInfo;
    expect(models.map((m) => m.name).sort()).toEqual(['alpha', 'austen', 'gpt2', 'sent']);
    expect(models.at(-1)!.name).toBe('austen');
    expect(by('alpha')).toMatchObject({
      source: 'run',
      tokenizer: 'bpe',
      blockSize: 16,
      nLayer: 2,
    });
    expect(by('sent')).toMatchObject({
      source: 'finetune',
      classifier: { task: 'classification', labels: ['negative', 'positive'] },
    });
    expect(by('gpt2')).toMatchObject({ source: 'imported', tokenizer: 'bpe', vocabSize: 50257 });
    expect(by('austen')).toMatchObject({ source: 'sample', tokenizer: 'char' });
    expect(by('alpha').ref).toBe(path.join(dir, 'ws/runs/alpha'));
  });
});
