/**
 * The engine host's handlers for the console feature's requests (src/common/console.ts):
 * generation (tokens streamed from a `generate` job), scoring as `score` jobs (a text's
 * log-probabilities, candidate answers), prompt assembly with the model's own tokenizer, labeled
 * tables for the few-shot builder, the per-model history and the sampling presets (both in
 * workspace/console/, written atomically), and the in-context evaluation job.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { apiError } from '../../common/api';
import {
  HISTORY_LIMIT,
  historyEntrySchema,
  type HistoryEntry,
  type IclEvalResult,
  type SamplingPreset,
  type ScoreJobResult,
} from '../../common/console';
import type { Tokenizer } from '../../engine/tokenizer/types';
import { writeJsonAtomic } from '../../engine/util/atomic';
import { HostError, type HostContext, type Handlers, type ModelLease } from '../context';

/**
 * The app's own presets (listed first; the user's cannot take their names). A preset changes only
 * what it names, so each names every knob of how tokens are picked (whichever preset came before,
 * the result is the same) and none names the stops, max new tokens or seed.
 */
export const BUILTIN_PRESETS: SamplingPreset[] = [
  {
    name: 'Greedy',
    sampling: { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
    builtin: true,
  },
  {
    name: 'Balanced',
    sampling: { temperature: 0.8, topK: 40, topP: 0.95, repetitionPenalty: 1 },
    builtin: true,
  },
  {
    name: 'Creative',
    sampling: { temperature: 1.1, topK: 0, topP: 0.98, repetitionPenalty: 1.1 },
    builtin: true,
  },
];

/** workspace/console/history/<hash of the model's path>.json */
export function historyFile(workspace: string, modelDir: string): string {
  const hash = createHash('sha256').update(path.resolve(modelDir)).digest('hex').slice(0, 20);
  return path.join(workspace, 'console', 'history', `${hash}.json`);
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HostError(
      apiError('engine', `${file} is not valid JSON; move it away to start over`),
    );
  }
}

export function consoleHandlers(ctx: HostContext): Handlers {
  // tokenizers by model folder (assembly and token texts need no weights), reloaded on change
  const tokenizers = new Map<string, { mtime: number; tokenizer: Tokenizer; blockSize: number }>();
  const tokenizerOf = async (ref: string) => {
    const dir = await ctx.modelDir(ref);
    const configFile = path.join(dir, 'config.json');
    const mtime = (await fs.stat(configFile)).mtimeMs;
    const hit = tokenizers.get(dir);
    if (hit && hit.mtime === mtime) return hit;
    const { loadTokenizer } = await import('../../engine/tokenizer');
    const { readHfConfig } = await import('../../engine/checkpoint/gpt2');
    const config = await readHfConfig(configFile);
    const entry = { mtime, tokenizer: await loadTokenizer(dir), blockSize: config.blockSize };
    tokenizers.set(dir, entry);
    return entry;
  };

  const presetsFile = path.join(ctx.workspace, 'console', 'presets.json');
  const userPresets = async (): Promise<SamplingPreset[]> => {
    const raw = (await readJson(presetsFile)) as { presets?: unknown } | undefined;
    const list = Array.isArray(raw?.presets) ? raw.presets : [];
    return list
      .filter(
        (p): p is { name: string; sampling: SamplingPreset['sampling'] } =>
          !!p && typeof p.name === 'string' && !!p.sampling && typeof p.sampling === 'object',
      )
      .map((p) => ({ name: p.name, sampling: p.sampling, builtin: false }));
  };
  const allPresets = async () => [...BUILTIN_PRESETS, ...(await userPresets())];
  const savePresets = (list: SamplingPreset[]) =>
    writeJsonAtomic(presetsFile, {
      presets: list.map(({ name, sampling }) => ({ name, sampling })),
    });
  const isBuiltin = (name: string) =>
    BUILTIN_PRESETS.some((b) => b.name.toLowerCase() === name.toLowerCase());

  /**
   * The folder of model `ref`, refused when it is a masked-LM (BERT-style): generation, scoring
   * and few-shot need a left-to-right model. Checked before any weights are read.
   */
  const leftToRightModel = async (ref: string): Promise<string> => {
    const dir = await ctx.modelDir(ref);
    const { refuseMaskedLmDir } = await import('../../engine/checkpoint/objective');
    await refuseMaskedLmDir(dir).catch((err: unknown) => {
      throw new HostError(apiError('bad-request', (err as Error).message));
    });
    return dir;
  };

  /**
   * A scoring request as a `score` job on the model `ref` while it runs (the status bar shows it,
   * jobs.cancel stops it); the request answers with the scores, the job's result counts tokens.
   */
  const scoreJob = async <R>(
    ref: string,
    request: ScoreJobResult['request'],
    score: (loaded: ModelLease, signal: AbortSignal) => Promise<R>,
    tokens: (scores: R) => number,
  ): Promise<R> => {
    const dir = await leftToRightModel(ref);
    return ctx.runJob(
      'score',
      { subject: path.basename(dir), models: [dir] },
      async (signal) => {
        const loaded = await ctx.loadModel(dir);
        try {
          return await score(loaded, signal);
        } finally {
          loaded.release();
        }
      },
      (r) => ({ type: 'score.result', request, tokens: tokens(r) }),
    );
  };

  return {
    'console.load': async (p) => {
      const { WeightsTooLargeError } = await import('../../engine/weights/format');
      const loaded = await ctx.loadModelAs(p.model, p.weights).catch((err: unknown) => {
        if (!(err instanceof WeightsTooLargeError)) throw err;
        throw new HostError(apiError('too-large', `params.weights: ${err.message}`));
      });
      try {
        return loaded.weights;
      } finally {
        loaded.release();
      }
    },

    'console.generate': async (p) => {
      const { generateTokens } = await import('../../engine/generate');
      // loaded before the job starts: a missing, forbidden or masked-LM model is the request's error
      await leftToRightModel(p.model);
      const loaded = await ctx.loadModel(p.model);
      return ctx.startJob(
        'generate',
        { subject: path.basename(p.model), models: [loaded.dir] },
        async (_push, signal, jobId) => {
          try {
            const it = generateTokens(
              loaded.model,
              loaded.tokenizer,
              loaded.tokenizer.encode(p.prompt),
              p.sampling ?? {},
              signal,
            );
            for (;;) {
              const r = await it.next();
              if (r.done) return r.value;
              // every token is sent (none coalesced); after a backend abort elsewhere it stops
              if (ctx.jobEnded(jobId)) return { ids: [], text: '', stoppedBy: 'cancelled' };
              ctx.emit({ type: 'generate.token', jobId, ...r.value });
            }
          } finally {
            loaded.release();
          }
        },
      );
    },

    'console.logprobs': async (p) => {
      const { scoreContinuation, scoreText } = await import('../../engine/score');
      return scoreJob(
        p.model,
        'console.logprobs',
        async ({ model, tokenizer }, signal) => {
          signal.throwIfAborted();
          return 'text' in p
            ? await scoreText(model, tokenizer, p.text, { signal })
            : await scoreContinuation(model, tokenizer, p.prompt, p.continuation, { signal });
        },
        (r) => r.tokens.length,
      );
    },

    'console.assemble': async (p) => {
      const { tokenizer, blockSize } = await tokenizerOf(p.model);
      const { assemblePrompt } = await import('../../engine/console/prompt');
      try {
        const a = assemblePrompt(
          tokenizer,
          blockSize,
          {
            mode: p.mode,
            text: p.text,
            ...(p.instruction !== undefined ? { instruction: p.instruction } : {}),
            ...(p.format !== undefined ? { format: p.format } : {}),
            ...(p.demos ? { demos: p.demos } : {}),
            ...(p.separator !== undefined ? { separator: p.separator } : {}),
          },
          p.reserve ?? 0,
        );
        const { ids, ...rest } = a;
        return { ...rest, tokens: ids.length };
      } catch (err) {
        throw new HostError(apiError('bad-request', `params.${(err as Error).message}`));
      }
    },

    'console.score': async (p) => {
      const { scoreChoices } = await import('../../engine/console/choices');
      const { tokenPiece } = await import('../../engine/console/prompt');
      const { isBackendAbort } = await import('../../engine/backendAbort');
      return scoreJob(
        p.model,
        'console.score',
        async ({ model, tokenizer }, signal) => {
          try {
            const scores = await scoreChoices(
              model,
              tokenizer,
              p.context,
              p.candidates,
              p.neutral,
              {
                signal,
              },
            );
            return {
              choices: scores.map((s) => ({
                ...s,
                pieces: s.tokens.map((id) => tokenPiece(tokenizer, id)),
              })),
            };
          } catch (err) {
            // a cancel or a backend crash is not the input's fault
            if (signal.aborted || isBackendAbort(err)) throw err;
            const m = (err as Error).message;
            throw new HostError(
              apiError('bad-request', /^candidates\./.test(m) ? `params.${m}` : m),
            );
          }
        },
        (r) => r.choices.reduce((n, c) => n + c.tokens.length, 0),
      );
    },

    'console.tokens': async (p) => {
      const { tokenizer } = await tokenizerOf(p.model);
      const { tokenPiece } = await import('../../engine/console/prompt');
      return { pieces: p.ids.map((id) => tokenPiece(tokenizer, id)) };
    },

    'console.inspect': async (p) => {
      const inspect = await import('../../engine/console/inspect');
      const loaded = await ctx.loadModel(p.model);
      try {
        const classifier = await inspect.readClassifierWeights(loaded.dir);
        let ids: number[];
        try {
          ids = inspect.inspectIds(loaded.tokenizer, p.prompt, classifier);
          inspect.checkInspectLength(loaded.model.config, ids.length);
        } catch (err) {
          const m = (err as Error).message;
          throw new HostError(
            apiError('bad-request', `params.${/^prompt:/.test(m) ? m : `prompt: ${m}`}`),
          );
        }
        return await inspect.inspectForward(loaded.model, loaded.tokenizer, ids, { classifier });
      } finally {
        loaded.release();
      }
    },

    'console.embeddingMap': async (p) => {
      const { embeddingMap } = await import('../../engine/console/inspect');
      const loaded = await ctx.loadModel(p.model);
      try {
        return await embeddingMap(loaded.model, loaded.tokenizer, p.query ?? '');
      } finally {
        loaded.release();
      }
    },

    'console.dataset': async (p) => {
      const file = await ctx.paths.existing(p.file, 'params.file', 'file');
      const { readLabeled } = await import('../../engine/console/dataset');
      const { drawDemos } = await import('../../engine/console/icl');
      const { Rng } = await import('../../engine/util/rng');
      let t;
      try {
        t = await readLabeled(file, {
          ...(p.textColumn ? { textColumn: p.textColumn } : {}),
          ...(p.labelColumn ? { labelColumn: p.labelColumn } : {}),
        });
      } catch (err) {
        throw new HostError(apiError('bad-request', (err as Error).message));
      }
      const demos = p.k
        ? drawDemos(
            t.examples,
            t.labels.map((l) => l.label),
            p.k,
            new Rng(p.seed ?? 1),
          ).map((d) => ({ input: d.input, output: d.label }))
        : [];
      return {
        file,
        format: t.format,
        columns: t.columns,
        textColumn: t.textColumn,
        labelColumn: t.labelColumn,
        total: t.examples.length,
        labels: t.labels,
        demos,
        problems: t.problems.slice(0, 5),
        problemCount: t.problems.length,
      };
    },

    'console.history.get': async (p) => {
      const file = historyFile(ctx.workspace, await ctx.modelDir(p.model));
      const raw = (await readJson(file)) as { entries?: unknown } | undefined;
      const entries: HistoryEntry[] = [];
      for (const e of Array.isArray(raw?.entries) ? raw.entries : []) {
        const r = historyEntrySchema.safeParse(e);
        if (r.success) entries.push(r.data);
      }
      return { entries };
    },

    'console.history.save': async (p) => {
      const dir = await ctx.modelDir(p.model);
      const entries = p.entries.slice(-HISTORY_LIMIT);
      await writeJsonAtomic(historyFile(ctx.workspace, dir), { model: dir, entries });
      return { saved: entries.length };
    },

    'console.history.clear': async (p) => {
      await fs.rm(historyFile(ctx.workspace, await ctx.modelDir(p.model)), { force: true });
      return { cleared: true as const };
    },

    'console.presets.list': () => allPresets(),

    'console.presets.save': async (p) => {
      if (isBuiltin(p.name)) {
        throw new HostError(
          apiError(
            'bad-request',
            `params.name: "${p.name}" is one of the app's presets; choose another name`,
          ),
        );
      }
      const list = (await userPresets()).filter((x) => x.name !== p.name);
      list.push({ name: p.name, sampling: p.sampling, builtin: false });
      await savePresets(list);
      return allPresets();
    },

    'console.presets.delete': async (p) => {
      if (isBuiltin(p.name)) {
        throw new HostError(
          apiError('bad-request', `params.name: the app's presets cannot be deleted`),
        );
      }
      const list = await userPresets();
      if (!list.some((x) => x.name === p.name)) {
        throw new HostError(apiError('not-found', `params.name: no preset "${p.name}"`));
      }
      await savePresets(list.filter((x) => x.name !== p.name));
      return allPresets();
    },

    'console.eval.start': async (p) => {
      const dir = await leftToRightModel(p.model);
      const data = await ctx.paths.existing(p.data, 'params.data', 'file');
      const compareDir = p.compare ? await ctx.modelDir(p.compare) : null;
      const models = compareDir ? [dir, compareDir] : [dir];
      return ctx.startJob(
        'eval-icl',
        { subject: path.basename(dir), models },
        async (push, signal) => {
          const { readLabeled } = await import('../../engine/console/dataset');
          const { evaluateIcl } = await import('../../engine/console/icl');
          const table = await readLabeled(data, {
            ...(p.textColumn ? { textColumn: p.textColumn } : {}),
            ...(p.labelColumn ? { labelColumn: p.labelColumn } : {}),
            signal,
          });
          const loaded = await ctx.loadModel(dir);
          try {
            const r = await evaluateIcl(loaded.model, loaded.tokenizer, {
              examples: table.examples,
              labels: p.labels,
              shots: p.shots,
              ...(p.format !== undefined ? { format: p.format } : {}),
              ...(p.separator !== undefined ? { separator: p.separator } : {}),
              seed: p.seed,
              limit: p.limit,
              signal,
              onStart: (s) => push({ type: 'console.eval.start', ...s }),
              onProgress: (e) => push({ type: 'console.eval.progress', ...e }),
              onPoint: (e) => push({ type: 'console.eval.point', ...e }),
            });
            const result: IclEvalResult = { type: 'console.eval.result', model: dir, data, ...r };
            if (compareDir) {
              const { finetunedBaseline } = await import('../../engine/console/compare');
              result.finetuned = await finetunedBaseline(
                compareDir,
                {
                  file: data,
                  examples: table.examples,
                  labels: p.labels,
                  seed: p.seed,
                  limit: p.limit,
                },
                { signal },
              );
            }
            return result;
          } finally {
            loaded.release();
          }
        },
      );
    },
  };
}
