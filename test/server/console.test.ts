/**
 * The console's requests through the engine host (in-process, wasm): streaming and stop of
 * console.generate, prompt assembly with the model's tokenizer, candidate scoring, labeled tables,
 * per-model history and presets on disk (atomic, and survive a new host), and the eval-icl job
 * with its progress, result and cancel.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compactHistory } from '../../src/common/console';
import type { ApiEvent } from '../../src/common/api';
import { saveModelDir } from '../../src/engine/checkpoint/modelDir';
import { finetunedAccuracy } from '../../src/engine/console/compare';
import { readLabeled } from '../../src/engine/console/dataset';
import { evaluationSplit } from '../../src/engine/console/icl';
import { finetune } from '../../src/engine/finetune/finetune';
import { inRanges, readTrainedRows } from '../../src/engine/finetune/trainedRows';
import { loadClassifier } from '../../src/engine/finetune/checkpoint';
import { classify } from '../../src/engine/finetune/predict';
import { scoreContinuation } from '../../src/engine/score';
import { loadModelDir } from '../../src/engine/checkpoint/modelDir';
import { GPT } from '../../src/engine/model/gpt';
import { historyFile } from '../../src/server/features/console';
import { TestHost as Host } from './testHost';
import { charTokenizer, randomWeights, removeDir, tempDir, tinyConfig } from '../engine/helpers';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,!?:=>\n0123456789';

let ws: string;
let modelDir: string;
let host: Host;

beforeAll(async () => {
  ws = await tempDir('gpt-studio-console-');
  const tok = charTokenizer(ALPHABET);
  const cfg = tinyConfig({ vocabSize: tok.vocabSize, blockSize: 64, nEmbd: 16 });
  host = new Host(ws);
  await host.call('backend.report', {}); // the backend is up
  const model = new GPT(cfg, randomWeights(cfg, 3, 0.3));
  modelDir = path.join(ws, 'models', 'tiny');
  await saveModelDir(modelDir, model, tok);
  model.dispose();
  const rows = [];
  for (let i = 0; i < 24; i++) {
    rows.push({ text: `good film ${i}`, label: 'positive' });
    rows.push({ text: `bad film ${i}`, label: 'negative' });
  }
  rows.push({ text: '', label: 'positive' });
  await fs.writeFile(
    path.join(ws, 'labeled.jsonl'),
    rows.map((r) => JSON.stringify(r)).join('\n') + '\n',
  );
});
afterAll(async () => {
  await host?.host.shutdown();
  await removeDir(ws);
});

describe('generation through the host', () => {
  it('streams generate.token events that add up to the result, then job.done', async () => {
    const { jobId } = await host.call('console.generate', {
      model: modelDir,
      prompt: 'the film',
      sampling: { maxNewTokens: 20, seed: 3, topAlternatives: 10 },
    });
    const done = await host.waitFor((e) => e.type === 'job.done' && e.jobId === jobId);
    const tokens = host.events.filter(
      (e): e is Extract<ApiEvent, { type: 'generate.token' }> =>
        e.type === 'generate.token' && e.jobId === jobId,
    );
    expect(tokens).toHaveLength(20);
    expect(tokens.every((t) => t.alternatives?.length === 10)).toBe(true);
    const result = (done as Extract<ApiEvent, { type: 'job.done' }>).result as {
      text: string;
      stoppedBy: string;
    };
    expect(tokens.map((t) => t.text).join('')).toBe(result.text);
    expect(result.stoppedBy).toBe('length');
    // the alternatives' texts come from console.tokens
    const ids = tokens[0]!.alternatives!.map((a) => a.id);
    const { pieces } = await host.call('console.tokens', { model: modelDir, ids });
    expect(pieces).toHaveLength(10);
    expect(pieces.every((p) => p.length === 1)).toBe(true);
  });

  it('console.load holds the weights as asked, with their numerics; the console then uses them', async () => {
    const q8 = await host.call('console.load', { model: modelDir, weights: 'q8' });
    expect(q8).toMatchObject({
      format: 'q8',
      choice: 'q8',
      numerics: { reference: 'f32', text: true },
    });
    expect(q8.numerics!.meanAbsDiff).toBeGreaterThan(0);
    expect(q8.numerics!.meanAbsDiff).toBeLessThan(0.05);
    const text = 'good film, bad film';
    const a = await host.call('console.logprobs', { model: modelDir, text });
    const f32 = await host.call('console.load', { model: modelDir, weights: 'auto' });
    expect(f32).toMatchObject({ format: 'f32', choice: 'auto', numerics: null });
    const b = await host.call('console.logprobs', { model: modelDir, text });
    // the q8 model scored it: close to float32, not equal
    expect(a.logprobs).not.toEqual(b.logprobs);
    a.logprobs.forEach((lp, i) => expect(Math.abs(lp - b.logprobs[i]!)).toBeLessThan(0.25));
    await expect(
      host.call('console.load', { model: modelDir, weights: 'q4' as 'q8' }),
    ).rejects.toThrow(/weights/);
  });

  it('stop: jobs.cancel ends a long generation early with stoppedBy cancelled', async () => {
    const { jobId } = await host.call('console.generate', {
      model: modelDir,
      prompt: 'the film',
      sampling: { maxNewTokens: 100_000, seed: 1 },
    });
    await host.waitFor((e) => e.type === 'generate.token' && e.jobId === jobId);
    expect(await host.call('jobs.cancel', { jobId })).toEqual({ cancelled: true });
    const done = (await host.waitFor((e) => e.type === 'job.done' && e.jobId === jobId)) as Extract<
      ApiEvent,
      { type: 'job.done' }
    >;
    const result = done.result as { ids: number[]; stoppedBy: string };
    expect(result.stoppedBy).toBe('cancelled');
    expect(result.ids.length).toBeLessThan(100_000);
  });
});

describe('console requests', () => {
  it('assembles with the model tokenizer and names the bad field', async () => {
    const a = await host.call('console.assemble', {
      model: modelDir,
      mode: 'few-shot',
      text: 'nice',
      format: '{input} => {output}',
      demos: [
        { input: 'good', output: 'positive' },
        { input: 'bad', output: 'negative' },
      ],
      reserve: 8,
    });
    expect(a.prompt).toBe('good => positive\nbad => negative\nnice =>');
    expect(a.tokens).toBe(a.prompt.length);
    expect(a.context).toBe(64);
    expect(a.budget).toBe(56);
    const bad = await host.raw('console.assemble', {
      model: modelDir,
      mode: 'zero-shot',
      text: 'x',
      instruction: 'no slot',
    });
    expect(bad.error?.code).toBe('bad-request');
    expect(bad.error?.message).toContain('params.template: the template needs {input}');
    const missing = await host.raw('console.assemble', {
      model: path.join(ws, 'nope'),
      mode: 'completion',
      text: '',
    });
    expect(missing.error?.code).toBe('not-found');
  });

  it('scores candidates as the engine does', async () => {
    const { choices } = await host.call('console.score', {
      model: modelDir,
      context: 'the film was',
      candidates: [' good', ' bad'],
      neutral: 'Answer:',
    });
    const loaded = await loadModelDir(modelDir);
    try {
      for (const c of choices) {
        const direct = await scoreContinuation(
          loaded.model,
          loaded.tokenizer,
          'the film was',
          c.text,
        );
        const neutral = await scoreContinuation(loaded.model, loaded.tokenizer, 'Answer:', c.text);
        expect(c.sum).toBeCloseTo(direct.sum, 4);
        expect(c.normalized).toBeCloseTo(direct.sum - neutral.sum, 4);
        expect(c.pieces.join('')).toBe(c.text);
      }
    } finally {
      loaded.model.dispose();
    }
  });

  it('reads a labeled table and draws balanced demonstrations; bad rows are reported', async () => {
    const info = await host.call('console.dataset', { file: 'labeled.jsonl', k: 4, seed: 2 });
    expect(info.textColumn).toBe('text');
    expect(info.labelColumn).toBe('label');
    expect(info.total).toBe(48);
    expect(info.labels).toEqual([
      { label: 'positive', count: 24 },
      { label: 'negative', count: 24 },
    ]);
    expect(info.demos).toHaveLength(4);
    expect(info.demos.filter((d) => d.output === 'positive')).toHaveLength(2);
    expect(info.problemCount).toBe(1);
    expect(info.problems[0]!.message).toMatch(/labeled\.jsonl, row 49: empty text/);
    const wrong = await host.raw('console.dataset', {
      file: 'labeled.jsonl',
      textColumn: 'review',
    });
    expect(wrong.error?.message).toContain('no column "review" (columns: text, label)');
    const none = await host.raw('console.dataset', { file: 'missing.csv' });
    expect(none.error?.code).toBe('not-found');
  });

  it('keeps the history per model, on disk', async () => {
    const entry = {
      id: 'e1',
      mode: 'completion' as const,
      input: 'hi',
      prompt: 'hi',
      reply: ' there',
      tokens: [
        { id: 3, text: ' there', logprob: -1.5, alternatives: [{ id: 4, logprob: -2, text: 'x' }] },
      ],
      sampling: { temperature: 0.5 },
      stoppedBy: 'length' as const,
      createdAt: new Date(0).toISOString(),
    };
    expect((await host.call('console.history.get', { model: modelDir })).entries).toEqual([]);
    await host.call('console.history.save', { model: modelDir, entries: [entry] });
    const file = historyFile(ws, modelDir);
    expect(file.startsWith(path.join(ws, 'console', 'history'))).toBe(true);
    expect(JSON.parse(await fs.readFile(file, 'utf8')).entries).toEqual([entry]);
    // no temp files left behind
    expect((await fs.readdir(path.dirname(file))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    // a new host (an app restart) reads it back
    const other = new Host(ws);
    expect((await other.call('console.history.get', { model: modelDir })).entries).toEqual([entry]);
    await other.host.shutdown();
    await host.call('console.history.clear', { model: modelDir });
    expect((await host.call('console.history.get', { model: modelDir })).entries).toEqual([]);
  });

  it('a long history is compacted to fit one message, oldest details first, and saves', async () => {
    const alt = Array.from({ length: 10 }, (_, i) => ({ id: i, logprob: -i, text: `t${i}` }));
    const turn = (n: number) => ({
      id: `t${n}`,
      mode: 'completion' as const,
      input: `p${n}`,
      prompt: `p${n}`,
      reply: 'x'.repeat(500),
      tokens: Array.from({ length: 500 }, (_, i) => ({
        id: i,
        text: 'x',
        logprob: -0.1,
        alternatives: alt,
      })),
      sampling: {},
      createdAt: new Date(n).toISOString(),
    });
    const all = Array.from({ length: 12 }, (_, n) => turn(n));
    const full = JSON.stringify(all).length;
    const max = Math.floor(full / 3);
    const kept = compactHistory(all, 200, max);
    expect(JSON.stringify(kept).length).toBeLessThanOrEqual(max);
    expect(kept).toHaveLength(12);
    expect(kept.at(-1)).toEqual(all.at(-1)); // the newest turn keeps everything
    expect(kept[0]!.tokens[0]!.alternatives).toBeUndefined();
    expect(kept[0]!.reply).toBe(all[0]!.reply);
    expect(compactHistory(all, 5)).toHaveLength(5);
    await host.call('console.history.save', { model: modelDir, entries: compactHistory(all) });
    expect((await host.call('console.history.get', { model: modelDir })).entries).toHaveLength(12);
    await host.call('console.history.clear', { model: modelDir });
  });

  it('saves, lists and deletes sampling presets; the built-in ones are protected', async () => {
    const start = await host.call('console.presets.list', {});
    expect(start.map((p) => p.name)).toEqual(['Greedy', 'Balanced', 'Creative']);
    const saved = await host.call('console.presets.save', {
      name: 'Poetry',
      sampling: { temperature: 1.2, topK: 20, stop: ['\n\n'] },
    });
    expect(saved.at(-1)).toEqual({
      name: 'Poetry',
      sampling: { temperature: 1.2, topK: 20, stop: ['\n\n'] },
      builtin: false,
    });
    const disk = JSON.parse(await fs.readFile(path.join(ws, 'console', 'presets.json'), 'utf8'));
    expect(disk.presets).toHaveLength(1);
    const refused = await host.raw('console.presets.save', { name: 'greedy', sampling: {} });
    expect(refused.error?.message).toContain('"greedy" is one of the app\'s presets');
    const bad = await host.raw('console.presets.save', {
      name: 'x',
      sampling: { temperature: -1 },
    });
    expect(bad.error?.message).toContain('params.sampling.temperature');
    const after = await host.call('console.presets.delete', { name: 'Poetry' });
    expect(after.map((p) => p.name)).toEqual(['Greedy', 'Balanced', 'Creative']);
  });
});

describe('the eval-icl job', () => {
  it('reports start, progress and a point per k, then the result', async () => {
    const { jobId } = await host.call('console.eval.start', {
      model: modelDir,
      data: path.join(ws, 'labeled.jsonl'),
      labels: [
        { label: 'negative', word: 'bad' },
        { label: 'positive', word: 'good' },
      ],
      shots: [0, 1, 2],
      limit: 8,
    });
    const done = (await host.waitFor(
      (e) => (e.type === 'job.done' || e.type === 'job.failed') && e.jobId === jobId,
    )) as Extract<ApiEvent, { type: 'job.done' }>;
    expect(done.type).toBe('job.done');
    expect(done.kind).toBe('eval-icl');
    const r = done.result as Extract<typeof done.result, { type: 'console.eval.result' }>;
    expect(r.type).toBe('console.eval.result');
    expect(r.points.map((p) => p.k)).toEqual([0, 1, 2]);
    // the status bar names the model the job evaluates
    expect(host.events.find((e) => e.type === 'job.started' && e.jobId === jobId)).toMatchObject({
      kind: 'eval-icl',
      subject: 'tiny',
    });
    expect(r.points.every((p) => p.n === 8)).toBe(true);
    expect(r.chance).toBe(0.5);
    const progress = host.events.filter((e) => e.type === 'job.progress' && e.jobId === jobId);
    const types = progress.map(
      (e) => (e as Extract<ApiEvent, { type: 'job.progress' }>).event.type,
    );
    expect(types[0]).toBe('console.eval.start');
    expect(types.filter((t) => t === 'console.eval.point')).toHaveLength(3);
    expect(types).toContain('console.eval.progress');
  });

  it('scores a fine-tuned classifier on the evaluated rows it never trained on', async () => {
    const ft = path.join(ws, 'models', 'tiny-ft');
    await finetune({
      model: modelDir,
      task: 'classification',
      columns: { text: 'text', label: 'label' },
      data: path.join(ws, 'labeled.jsonl'),
      out: ft,
      settings: { lr: 3e-3, batchSize: 16, epochs: 1, valFraction: 0.2, seed: 1 },
    });
    const labels = [
      { label: 'negative', word: 'bad' },
      { label: 'positive', word: 'good' },
    ];
    const { jobId } = await host.call('console.eval.start', {
      model: modelDir,
      data: path.join(ws, 'labeled.jsonl'),
      labels,
      shots: [0],
      limit: 8,
      seed: 4,
      compare: ft,
    });
    const done = (await host.waitFor(
      (e) => (e.type === 'job.done' || e.type === 'job.failed') && e.jobId === jobId,
    )) as Extract<ApiEvent, { type: 'job.done' }>;
    expect(done.type).toBe('job.done');
    const r = done.result as Extract<typeof done.result, { type: 'console.eval.result' }>;
    expect(r.finetuned?.model).toBe(ft);
    // the same file it trained on: the evaluated rows it saw are left out and counted
    const table = await readLabeled(path.join(ws, 'labeled.jsonl'));
    const { evalSet } = evaluationSplit(table.examples, labels, 4, 8);
    const trained = (await readTrainedRows(ft))!;
    const unseen = evalSet.filter((e) => !inRanges(trained.rows, e.row!));
    expect(r.finetuned).toMatchObject({
      overlap: 'same-file',
      n: unseen.length,
      excluded: 8 - unseen.length,
    });
    expect(r.finetuned?.accuracy).toBe(
      unseen.length ? (await finetunedAccuracy(ft, unseen)).accuracy : null,
    );
  });

  it('cancels, and refuses a missing data file up front', async () => {
    const { jobId } = await host.call('console.eval.start', {
      model: modelDir,
      data: path.join(ws, 'labeled.jsonl'),
      labels: [
        { label: 'negative', word: 'bad' },
        { label: 'positive', word: 'good' },
      ],
      shots: [0, 1, 2, 4, 8],
      limit: 24,
    });
    await host.waitFor((e) => e.type === 'job.progress' && e.jobId === jobId);
    await host.call('jobs.cancel', { jobId });
    const end = await host.waitFor(
      (e) => (e.type === 'job.done' || e.type === 'job.failed') && e.jobId === jobId,
    );
    expect(end.type).toBe('job.failed');
    expect((end as Extract<ApiEvent, { type: 'job.failed' }>).error.code).toBe('cancelled');
    const missing = await host.raw('console.eval.start', {
      model: modelDir,
      data: 'nope.csv',
      labels: [
        { label: 'a', word: 'a' },
        { label: 'b', word: 'b' },
      ],
    });
    expect(missing.error?.message).toContain('params.data:');
  });
});

describe('looking inside a model', () => {
  it('console.inspect: attention per layer and head, the logit lens, and the length limit', async () => {
    const r = await host.call('console.inspect', { model: modelDir, prompt: 'good film' });
    expect(r.tokens.map((t) => t.text).join('')).toBe('good film');
    const T = r.tokens.length;
    expect([r.attention.length, r.attention[0]!.length, r.attention[0]![0]!.length]).toEqual([
      r.nLayer,
      r.nHead,
      T,
    ]);
    for (const row of r.attention.flat(2)) expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    expect(r.lens).toHaveLength(r.nLayer + 1);
    expect(r.lens[r.nLayer]!.map((g) => g.length)).toEqual(Array(T).fill(5));
    // the lens' last row is what the model predicts: its top token after "good film" is the
    // likeliest continuation console.logprobs scores
    const top = r.lens[r.nLayer]![T - 1]![0]!;
    const s = await host.call('console.logprobs', {
      model: modelDir,
      prompt: 'good film',
      continuation: top.text,
    });
    expect(s.tokens.at(-1)).toBe(top.id);
    expect(Math.exp(s.logprobs.at(-1)!)).toBeCloseTo(top.p, 4);
    expect(r.classifier).toBeNull();
    // past the model's context (64): a clear refusal naming the field and the limit
    const long = await host.raw('console.inspect', { model: modelDir, prompt: 'a'.repeat(65) });
    expect(long.error?.code).toBe('bad-request');
    expect(long.error?.message).toBe(
      "params.prompt: 65 tokens; looking inside takes at most 64 (the model's context is 64 tokens). Shorten the prompt.",
    );
    const unknown = await host.raw('console.inspect', { model: modelDir, prompt: 'good ~' });
    expect(unknown.error?.code).toBe('bad-request');
    expect(unknown.error?.message).toMatch(/^params\.prompt: .*not in this tokenizer's vocabulary/);
  });

  it('console.inspect on a fine-tuned classifier: its logit per label at every layer', async () => {
    const ft = path.join(ws, 'models', 'tiny-ft-inspect');
    await finetune({
      model: modelDir,
      task: 'classification',
      columns: { text: 'text', label: 'label' },
      data: path.join(ws, 'labeled.jsonl'),
      out: ft,
      settings: { lr: 3e-3, batchSize: 16, epochs: 1, valFraction: 0.2, seed: 2 },
    });
    const r = await host.call('console.inspect', { model: ft, prompt: 'bad film' });
    // framed as fine-tuning framed it: [s] text [e]
    expect(r.tokens).toHaveLength('bad film'.length + 2);
    expect(r.classifier?.labels).toEqual(['negative', 'positive']);
    expect(r.classifier?.logits).toHaveLength(r.nLayer + 1);
    // the last layer's logits are the classifier's own prediction
    const c = await loadClassifier(ft);
    try {
      const { probs } = await classify(c, { text: 'bad film' });
      const z = r.classifier!.logits[r.nLayer]!;
      const max = Math.max(...z);
      const e = z.map((v) => Math.exp(v - max));
      const sum = e.reduce((a, b) => a + b, 0);
      e.forEach((v, i) => expect(v / sum).toBeCloseTo(probs[i]!, 5));
    } finally {
      c.dispose();
    }
  });

  it('console.embeddingMap: the vocabulary on two principal components, searchable', async () => {
    const m = await host.call('console.embeddingMap', { model: modelDir, query: 'Z' });
    expect(m.points).toHaveLength(ALPHABET.length + 1); // the characters and end-of-text
    expect(m.explained[0]!).toBeGreaterThanOrEqual(m.explained[1]!);
    expect(m.matches.map((p) => p.text).sort()).toEqual(['Z', 'z']);
    const bad = await host.raw('console.embeddingMap', {
      model: modelDir,
      query: 'x'.repeat(1001),
    });
    expect(bad.error?.code).toBe('bad-request');
  });
});
