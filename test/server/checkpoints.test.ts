/**
 * The checkpoints requests through the engine host: export and import as jobs with progress and
 * a result; a bad checkpoint fails its job with a message naming the tensor, and the host goes on
 * answering; destinations that hold files are refused before any job starts.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent, ReplyMessage } from '../../src/common/api';
import type { CheckpointInfo } from '../../src/common/checkpoints';
import { EngineHost } from '../../src/server/host';
import { bpeTok, charTok, makeHubGpt2, makeRun } from '../engine/checkpoint/fixtures';
import { tinyCheckpointConfig as tinyConfig } from '../engine/helpers';

let dir: string;
let host: EngineHost;
const replies = new Map<number, ReplyMessage>();
const events: ApiEvent[] = [];
let next = 1;

async function call(name: string, params: unknown): Promise<unknown> {
  const id = next++;
  await host.handle({ id, type: 'invoke', name, params });
  const r = replies.get(id);
  if (!r || r.type === 'event') throw new Error('no reply');
  if (r.type === 'error') throw Object.assign(new Error(r.error.message), r.error);
  return r.result;
}

/** Waits for the job's job.done / job.failed; returns every event of the job. */
async function finished(jobId: string): Promise<ApiEvent[]> {
  for (let i = 0; i < 1000; i++) {
    const mine = events.filter((e) => 'jobId' in e && e.jobId === jobId);
    if (mine.some((e) => e.type === 'job.done' || e.type === 'job.failed')) return mine;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`job ${jobId} did not finish`);
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'checkpoints-host-'));
  host = new EngineHost({
    workspace: dir,
    backend: 'cpu',
    progressIntervalMs: 0,
    send: (m) => {
      if (m.type === 'event') events.push(m.event);
      else replies.set(m.id as number, m);
    },
  });
  await makeRun(path.join(dir, 'runs', 'bpe'), await bpeTok());
  await makeRun(path.join(dir, 'runs', 'char'), charTok());
  await makeRun(path.join(dir, 'runs', 'gpt1'), await bpeTok(), { cfg: { layout: 'gpt1' } });
  await makeRun(path.join(dir, 'runs', 'mlm'), await bpeTok(), { cfg: { objective: 'mlm' } });
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('checkpoints through the engine host', () => {
  it('inspect says which formats a model can take, and why not', async () => {
    const bpe = (await call('checkpoints.inspect', { model: 'bpe' })) as CheckpointInfo;
    expect(bpe.tokenizer).toBe('bpe');
    expect(bpe.formats).toEqual({ hf: { ok: true }, gguf: { ok: true }, cluster: { ok: true } });
    expect(bpe.suggestedOut.gguf).toBe(path.join(dir, 'exports', 'bpe-gguf'));
    const char = (await call('checkpoints.inspect', { model: 'char' })) as CheckpointInfo;
    expect(char.formats.gguf.ok).toBe(false);
    expect(char.formats.gguf).toMatchObject({ code: 'char-tokenizer' });
    expect(char.formats.gguf.reason).toMatch(/character-level/);
    // GPT-1's post-LayerNorm layout has no llama.cpp architecture, whatever its tokenizer
    const gpt1 = (await call('checkpoints.inspect', { model: 'gpt1' })) as CheckpointInfo;
    expect(gpt1.formats.hf).toEqual({ ok: true });
    expect(gpt1.formats.gguf).toMatchObject({ ok: false, code: 'post-ln' });
    expect(gpt1.formats.gguf.reason).toMatch(/post-LayerNorm/);
    await expect(
      call('checkpoints.export', { model: 'gpt1', format: 'gguf' }),
    ).rejects.toMatchObject({
      code: 'bad-request',
      message: expect.stringMatching(/^params\.format: .*post-LayerNorm/),
    });
    // the cluster's train.py trains GPT-2's pre-LayerNorm causal LM: not GPT-1's, not a masked-LM
    expect(gpt1.formats.cluster).toMatchObject({ ok: false, code: 'cluster-post-ln' });
    expect(gpt1.formats.cluster.reason).toMatch(/layout "gpt1"/);
    const mlm = (await call('checkpoints.inspect', { model: 'mlm' })) as CheckpointInfo;
    expect(mlm.formats.cluster).toMatchObject({ ok: false, code: 'cluster-mlm' });
    expect(mlm.formats.cluster.reason).toMatch(/objective "mlm"/);
    await expect(
      call('checkpoints.export', { model: 'gpt1', format: 'cluster' }),
    ).rejects.toMatchObject({
      code: 'bad-request',
      message: expect.stringMatching(/^params\.format: .*pre-LayerNorm causal LM/),
    });
    await expect(call('checkpoints.inspect', { model: 'nope' })).rejects.toMatchObject({
      code: 'not-found',
    });
  });

  it('exports a run as a job with progress and a result', async () => {
    const { jobId } = (await call('checkpoints.export', { model: 'bpe', format: 'gguf' })) as {
      jobId: string;
    };
    const mine = await finished(jobId);
    expect(mine[0]).toMatchObject({ type: 'job.started', kind: 'export' });
    const progress = mine.filter((e) => e.type === 'job.progress');
    expect(progress.length).toBeGreaterThan(1);
    expect(progress[0]).toMatchObject({ event: { type: 'checkpoints.progress', phase: 'read' } });
    const done = mine.at(-1)!;
    expect(done).toMatchObject({
      type: 'job.done',
      kind: 'export',
      result: {
        type: 'checkpoints.result',
        operation: 'export',
        format: 'gguf',
        out: path.join(dir, 'exports', 'bpe-gguf'),
        files: ['bpe.f32.gguf'],
      },
    });
  });

  it('refuses GGUF for a char model and a destination that holds files, before any job', async () => {
    await expect(call('checkpoints.export', { model: 'char', format: 'gguf' })).rejects.toThrow(
      /params\.format: .*character-level/,
    );
    await expect(call('checkpoints.export', { model: 'bpe', format: 'gguf' })).rejects.toThrow(
      /params\.out: .*bpe-gguf already exists and is not empty/,
    );
  });

  it('imports into workspace/models, and the model is listed and usable', async () => {
    const src = path.join(dir, 'incoming', 'my-gpt2');
    await makeHubGpt2(src, tinyConfig({ vocabSize: 50257, nLayer: 1 }));
    const { jobId } = (await call('checkpoints.import', { from: src })) as { jobId: string };
    const done = (await finished(jobId)).at(-1)!;
    expect(done).toMatchObject({
      type: 'job.done',
      kind: 'import',
      result: { operation: 'import', out: path.join(dir, 'models', 'my-gpt2'), tokenizer: 'bpe' },
    });
    const models = (await call('models.list', {})) as Array<{ name: string; source: string }>;
    expect(models).toContainEqual(
      expect.objectContaining({ name: 'my-gpt2', source: 'imported', nLayer: 1, nHead: 2 }),
    );
    // a masked-LM says so in the listing; a causal LM does not
    expect(models.find((m) => m.name === 'mlm')).toMatchObject({ objective: 'mlm' });
    expect(models.find((m) => m.name === 'bpe')).not.toHaveProperty('objective');
    const scored = (await call('console.logprobs', {
      model: path.join(dir, 'models', 'my-gpt2'),
      text: 'Hello world',
    })) as { tokens: number[] };
    expect(scored.tokens).toEqual([15496, 995]);
  });

  it('a bad checkpoint fails the job, names the tensor, writes nothing; the host carries on', async () => {
    const src = path.join(dir, 'incoming', 'broken');
    await makeHubGpt2(src, tinyConfig({ vocabSize: 50257, nLayer: 1 }));
    const file = path.join(src, 'model.safetensors');
    const bytes = await fs.readFile(file);
    await fs.writeFile(file, bytes.subarray(0, bytes.length - 64));
    const { jobId } = (await call('checkpoints.import', { from: src, name: 'broken' })) as {
      jobId: string;
    };
    const failed = (await finished(jobId)).at(-1)!;
    expect(failed).toMatchObject({ type: 'job.failed', kind: 'import', error: { code: 'engine' } });
    expect((failed as { error: { message: string } }).error.message).toMatch(
      /model\.safetensors: tensor '[^']+' needs bytes up to \d+ .*truncated/,
    );
    const models = await fs.readdir(path.join(dir, 'models'));
    expect(models).toEqual(['my-gpt2']);
    expect(((await call('app.info', {})) as { workspace: string }).workspace).toBe(dir);
  });

  it('refuses pytorch_model.bin through the host too', async () => {
    const src = path.join(dir, 'incoming', 'pickled');
    await fs.mkdir(src, { recursive: true });
    await fs.writeFile(path.join(src, 'config.json'), '{}');
    await fs.writeFile(path.join(src, 'pytorch_model.bin'), 'x');
    const { jobId } = (await call('checkpoints.import', { from: src })) as { jobId: string };
    const failed = (await finished(jobId)).at(-1)!;
    expect((failed as { error: { message: string } }).error.message).toMatch(
      /unpickling can run arbitrary code/,
    );
  });
});
