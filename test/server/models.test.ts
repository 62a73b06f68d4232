import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelInfo } from '../../src/common/api';
import { saveModelDir } from '../../src/engine/checkpoint/modelDir';
import { GPT } from '../../src/engine/model/gpt';
import { trainTokenizer } from '../../src/engine/tokenizer';
import { listModels, paramsFromConfig } from '../../src/server/models';
import type { HostContext } from '../../src/server/context';
import { charTokenizer, randomWeights, removeDir, tempDir, tinyConfig } from '../engine/helpers';
import { TestHost as Host } from './testHost';

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
      kind: 'pretrained',
      tokenizer: 'bpe',
      blockSize: 16,
      nLayer: 2,
    });
    expect(by('sent')).toMatchObject({
      source: 'finetune',
      kind: 'fine-tuned',
      classifier: { task: 'classification', labels: ['negative', 'positive'] },
    });
    expect(by('gpt2')).toMatchObject({
      source: 'imported',
      kind: 'imported',
      tokenizer: 'bpe',
      vocabSize: 50257,
    });
    expect(by('austen')).toMatchObject({ source: 'sample', kind: 'pretrained', tokenizer: 'char' });
    expect(by('alpha').ref).toBe(path.join(dir, 'ws/runs/alpha'));
  });
});

describe('models.delete, and the Runs page list', () => {
  let ws: string;
  let outside: string;
  let host: Host;
  const at = (...p: string[]) => path.join(ws, ...p);

  beforeAll(async () => {
    ws = await tempDir('gpt-studio-models-ws-');
    outside = await tempDir('gpt-studio-models-outside-');
    const tok = charTokenizer('abcdefgh \n');
    const cfg = tinyConfig({ vocabSize: tok.vocabSize, blockSize: 32, nEmbd: 16 });
    const model = new GPT(cfg, randomWeights(cfg, 5, 0.3));
    for (const dir of [at('models', 'tiny'), at('finetunes', 'sent'), path.join(outside, 'm')]) {
      await saveModelDir(dir, model, tok);
    }
    model.dispose();
    await fs.writeFile(
      at('finetunes', 'sent', 'finetune.json'),
      JSON.stringify({ result: { outcome: 'cancelled', elapsedMs: 4200 } }),
    );
    await fs.mkdir(at('models', 'tiny', 'inner'));
    await fs.symlink(path.join(outside, 'm'), at('models', 'link'));
    host = new Host(ws, {
      resourcesDir: path.join(dir, 'res'),
      paths: { mode: 'allow-list', allow: [outside] },
    });
  });
  afterAll(async () => {
    await host?.host.shutdown();
    await removeDir(ws);
    await removeDir(outside);
  });

  it('lists fine-tunes and imports with their kinds, sized', async () => {
    const models = await host.call('models.list', {});
    const kind = (n: string) => models.find((m) => m.name === n)?.kind;
    expect(kind('tiny')).toBe('imported');
    expect(kind('sent')).toBe('fine-tuned');
    expect(kind('austen')).toBe('pretrained');
    const info = await host.call('runs.info', {});
    const sent = info.find((i) => i.dir === at('finetunes', 'sent'));
    expect(sent).toMatchObject({ kind: 'fine-tuned', outcome: 'cancelled', elapsedMs: 4200 });
    expect(sent!.params).toBeGreaterThan(0);
    expect(sent!.bytes).toBeGreaterThan(1000);
    expect(info.find((i) => i.dir === at('models', 'tiny'))).toMatchObject({ kind: 'imported' });
  });

  it('deletes only a model folder of the workspace, whatever the path', async () => {
    const refused = async (model: string) => (await host.raw('models.delete', { model })).error;
    // allowed to read (--allow-path), still not a model of the workspace
    expect(await refused(path.join(outside, 'm'))).toMatchObject({ code: 'forbidden' });
    // a link in models/ to a folder elsewhere: its real path decides
    expect(await refused(at('models', 'link'))).toMatchObject({ code: 'forbidden' });
    // the bundled sample, a folder inside a model, the models folder itself
    expect(await refused(path.join(dir, 'res', 'models', 'austen'))).toMatchObject({
      code: 'forbidden',
    });
    expect(await refused(at('models', 'tiny', 'inner'))).toMatchObject({ code: 'forbidden' });
    expect(await refused(at('models'))).toMatchObject({ code: 'forbidden' });
    expect(await refused(at('models', 'nothing'))).toMatchObject({ code: 'not-found' });
    expect(await refused('/')).toMatchObject({ code: 'forbidden' });
    await expect(fs.stat(path.join(outside, 'm', 'config.json'))).resolves.toBeTruthy();

    expect(await host.call('models.delete', { model: at('finetunes', 'sent') })).toEqual({
      deleted: true,
    });
    await expect(fs.stat(at('finetunes', 'sent'))).rejects.toThrow();
    expect((await host.call('models.list', {})).map((m) => m.name)).not.toContain('sent');
  });

  it('with unrestricted paths (Electron) it still deletes nothing outside the workspace', async () => {
    const free = new Host(ws, {
      resourcesDir: path.join(dir, 'res'),
      paths: { mode: 'unrestricted' },
    });
    try {
      const r = await free.raw('models.delete', { model: path.join(outside, 'm') });
      expect(r.error).toMatchObject({ code: 'forbidden' });
      expect(r.error!.message).toContain('not a model of this workspace');
    } finally {
      await free.host.shutdown();
    }
  });

  it('refuses while a job uses the model, and deletes it once the job ended', async () => {
    const model = at('models', 'tiny');
    const { jobId } = await host.call('console.generate', {
      model,
      prompt: 'abc',
      // greedy: this model then never samples end-of-text (5000 tokens checked), so the job is
      // still running when the delete arrives; sampled, it ended after 62 tokens on a quiet machine
      sampling: { maxNewTokens: 100_000, temperature: 0 },
    });
    const busy = (await host.raw('models.delete', { model })).error;
    expect(busy).toMatchObject({ code: 'busy', details: { jobId } });
    expect(busy!.message).toContain('tiny');
    await host.call('jobs.cancel', { jobId });
    await host.waitFor(
      (e) => (e.type === 'job.done' || e.type === 'job.failed') && e.jobId === jobId,
    );
    expect(await host.call('models.delete', { model })).toEqual({ deleted: true });
    await expect(fs.stat(model)).rejects.toThrow();
  });
});
