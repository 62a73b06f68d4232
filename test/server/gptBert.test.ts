/**
 * Masked-LM (BERT-style) models through the engine host: the console refuses to generate, score
 * or run few-shot with one (a bad-request naming the model and the reason), and the
 * finetune.gptBert job pretrains a GPT and a BERT as a run was, fine-tunes both and answers
 * with one row each.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent } from '../../src/common/api';
import type { GptBertResult } from '../../src/common/finetune';
import { saveModelDir } from '../../src/engine/checkpoint/modelDir';
import { GPT } from '../../src/engine/model/gpt';
import { MASK_TOKEN } from '../../src/engine/tokenizer/types';
import { pretrain } from '../../src/engine/train/pretrain';
import { TestHost as Host } from './testHost';
import {
  charTokenizer,
  removeDir,
  tempDir,
  TINY_MODEL,
  TINY_TRAIN,
  tinyConfig,
  toyCorpus,
} from '../engine/helpers';

let ws: string;
let host: Host;
let bert: string;
let run: string;
let labeled: string;

beforeAll(async () => {
  ws = await tempDir('gpt-studio-gptbert-');
  host = new Host(ws);
  await host.call('backend.report', {});
  const tok = charTokenizer();
  tok.addSpecialTokens([MASK_TOKEN]);
  const model = GPT.init(tinyConfig({ vocabSize: tok.vocabSize, objective: 'mlm' }), 1);
  bert = path.join(ws, 'models', 'bert');
  await saveModelDir(bert, model, tok);
  model.dispose();
  const corpus = path.join(ws, 'corpus.txt');
  await fs.writeFile(corpus, toyCorpus(6));
  run = path.join(ws, 'runs', 'base');
  await pretrain({
    corpus: [corpus],
    out: run,
    tokenizer: 'char',
    model: { ...TINY_MODEL },
    train: { ...TINY_TRAIN, steps: 2, sampleEvery: 0 },
  });
  // the toy corpus's characters only: the char tokenizer knows no others
  const words = ['the', 'sat', 'on', 'mat', 'log', 'by'];
  const rows = Array.from({ length: 24 }, (_, i) => {
    const text = `${words[i % 6]} ${words[(i * 5) % 6]}`;
    return JSON.stringify(
      i % 2 ? { text: `${text} cat`, label: 'cat' } : { text: `${text} dog`, label: 'dog' },
    );
  });
  labeled = path.join(ws, 'labeled.jsonl');
  await fs.writeFile(labeled, rows.join('\n') + '\n');
});
afterAll(async () => {
  await host?.host.shutdown();
  await removeDir(ws);
});

describe('a masked-LM in the console', () => {
  const reason =
    /^bad-request: bert is a masked-LM \(BERT-style\) model: it sees both sides of each token, so it cannot generate text left to right or rank continuations; fine-tune it or use a GPT model\.$/;

  it('generate, logprobs, score and few-shot are refused with the reason', async () => {
    await expect(host.call('console.generate', { model: bert, prompt: 'the' })).rejects.toThrow(
      reason,
    );
    await expect(host.call('console.logprobs', { model: bert, text: 'the cat' })).rejects.toThrow(
      reason,
    );
    await expect(
      host.call('console.score', { model: bert, context: 'the', candidates: ['cat', 'dog'] }),
    ).rejects.toThrow(reason);
    await expect(
      host.call('console.eval.start', {
        model: bert,
        data: labeled,
        labels: [
          { label: 'cat', word: 'cat' },
          { label: 'dog', word: 'dog' },
        ],
        shots: [0],
        limit: 4,
      }),
    ).rejects.toThrow(reason);
  });
});

describe('a masked-LM in the export dialog', () => {
  it('checkpoints.inspect offers none of the formats, each with its reason; export refuses', async () => {
    const info = await host.call('checkpoints.inspect', { model: bert });
    expect(info.formats.hf).toMatchObject({ ok: false, code: 'mlm' });
    expect(info.formats.hf.reason).toMatch(/BertForMaskedLM's blocks are post-LayerNorm/);
    expect(info.formats.gguf).toMatchObject({ ok: false, code: 'mlm' });
    expect(info.formats.gguf.reason).toMatch(/llama\.cpp's gpt2 architecture runs a left-to-right/);
    expect(info.formats.cluster).toMatchObject({ ok: false, code: 'cluster-mlm' });
    for (const format of ['hf', 'gguf'] as const) {
      await expect(
        host.call('checkpoints.export', {
          model: bert,
          format,
          out: path.join(ws, `out-${format}`),
        }),
      ).rejects.toThrow(/^bad-request: params\.format: it is a masked-LM \(BERT-style\) model/);
    }
  });
});

describe('finetune.gptBert', () => {
  const params = () => ({
    task: 'classification' as const,
    columns: { text: 'text', label: 'label' },
    data: labeled,
    settings: { epochs: 1, batchSize: 12, lr: 3e-3 },
    pretrainSteps: 2,
    workers: 1,
  });

  it('runs as a job: its phases, then one row for GPT and one for BERT', async () => {
    const { jobId } = await host.call('finetune.gptBert', { model: run, ...params() });
    const end = await host.waitFor(
      (e) => (e.type === 'job.done' || e.type === 'job.failed') && e.jobId === jobId,
      60_000,
    );
    expect(end.type, JSON.stringify(end)).toBe('job.done');
    const result = (end as Extract<ApiEvent, { type: 'job.done' }>).result as GptBertResult;
    expect(result.rows.map((r) => r.model)).toEqual(['GPT', 'BERT']);
    expect(result.pretrain.steps).toBe(2);
    const phases = host.events.flatMap((e) =>
      e.type === 'job.progress' && e.jobId === jobId && e.event.type === 'gptbert.phase'
        ? [`${e.event.model} ${e.event.phase}`]
        : [],
    );
    expect(phases).toEqual(['GPT pretrain', 'GPT finetune', 'BERT pretrain', 'BERT finetune']);
    // nothing is left behind in the workspace
    expect(await fs.readdir(path.join(ws, 'runs'))).toEqual(['base']);
  }, 60_000);

  it('a model without a pretraining record is the request’s error', async () => {
    await expect(host.call('finetune.gptBert', { model: bert, ...params() })).rejects.toThrow(
      /^bad-request: .*bert: no pretraining record \(state\.json with its corpus and settings\)/,
    );
  });
});
