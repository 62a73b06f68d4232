/** The engine host's handlers for the finetune feature's requests (src/common/finetune.ts). */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { apiError, type ParsedParams } from '../../common/api';
import type { ClassifyInput, FinetunePreview } from '../../common/finetune';
import type { LoadedClassifier } from '../../engine/finetune/checkpoint';
import { HostError, type Handlers, type HostContext } from '../context';
import { exists } from '../../engine/util/fs';

const badRequest = (message: string) => new HostError(apiError('bad-request', message));

/** An engine error about the user's input (a file, a column) becomes a bad-request. */
async function userInput<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof HostError) throw err;
    throw badRequest((err as Error).message);
  }
}

export function finetuneHandlers(ctx: HostContext): Handlers {
  const finetunesDir = path.join(ctx.workspace, 'finetunes');
  const resolveFile = (p: string, field: string) => ctx.paths.existing(p, field, 'file');

  // the classifier the console last used, kept loaded while its files do not change
  let cached: { key: string; c: LoadedClassifier } | null = null;
  const classifier = async (ref: string): Promise<LoadedClassifier> => {
    const dir = await ctx.modelDir(ref);
    const stat = await fs.stat(path.join(dir, 'model.safetensors')).catch(() => null);
    const key = `${dir}\u0000${stat?.mtimeMs ?? 0}`;
    if (cached?.key === key) return cached.c;
    const { loadClassifier } = await import('../../engine/finetune/checkpoint');
    const c = await userInput(() => loadClassifier(dir));
    cached?.c.dispose();
    cached = { key, c };
    return c;
  };

  /** A free folder name under finetunes/ for a new fine-tune. */
  const outDir = async (name: string | undefined, model: string, task: string) => {
    if (name) {
      const dir = path.join(finetunesDir, name);
      if (await exists(dir)) {
        throw badRequest(`params.name: a fine-tune "${name}" already exists; choose another name`);
      }
      return { dir, name };
    }
    const stem = `${path.basename(model)}-${task}`.replace(/[^A-Za-z0-9._-]/g, '-');
    for (let i = 1; ; i++) {
      const n = i === 1 ? stem : `${stem}-${i}`;
      if (!(await exists(path.join(finetunesDir, n))))
        return { dir: path.join(finetunesDir, n), name: n };
    }
  };

  /** A fine-tune's or an ablation's input, checked: the model, the files, the column mapping. */
  const jobInput = async (p: ParsedParams<'finetune.start'>) => {
    const model = await ctx.modelDir(p.model);
    const data = await resolveFile(p.data, 'params.data');
    const valData = p.valData ? await resolveFile(p.valData, 'params.valData') : undefined;
    const { mappingProblem } = await import('../../engine/finetune/data');
    const problem = mappingProblem(p.task, p.columns);
    if (problem) throw badRequest(`params.columns: ${problem}`);
    return {
      model,
      task: p.task,
      columns: p.columns,
      data,
      ...(valData ? { valData } : {}),
      settings: p.settings ?? {},
      ...(p.workers !== undefined ? { workers: p.workers } : {}),
    };
  };

  return {
    'finetune.columns': async (p) => {
      const file = await resolveFile(p.file, 'params.file');
      const { readTable } = await import('../../engine/data/records');
      const { guessColumns } = await import('../../engine/finetune/data');
      const table = await userInput(() => readTable(file, { limit: 200 }));
      if (table.columns.length === 0) {
        throw badRequest(
          `${path.basename(file)}: no readable rows` +
            (table.problems[0] ? ` (${table.problems[0].message})` : ''),
        );
      }
      return {
        file,
        format: table.format,
        columns: table.columns,
        sample: table.rows.slice(0, 5).map((r) => r.values),
        guess: guessColumns(table.columns),
      };
    },

    'finetune.preview': async (p): Promise<FinetunePreview> => {
      const dir = await ctx.modelDir(p.model);
      const data = await resolveFile(p.data, 'params.data');
      const valData = p.valData ? await resolveFile(p.valData, 'params.valData') : undefined;
      const { mappingProblem } = await import('../../engine/finetune/data');
      const problem = mappingProblem(p.task, p.columns);
      if (problem) throw badRequest(`params.columns: ${problem}`);
      const { previewFinetune } = await import('../../engine/finetune/preview');
      return userInput(() =>
        previewFinetune({
          model: dir,
          task: p.task,
          columns: p.columns,
          data,
          ...(valData ? { valData } : {}),
          ...(p.valFraction !== undefined ? { valFraction: p.valFraction } : {}),
        }),
      );
    },

    'finetune.start': async (p) => {
      const job = await jobInput(p);
      const out = await outDir(p.name, job.model, p.task);
      const { finetune } = await import('../../engine/finetune/finetune');
      const models = [job.model, out.dir];
      return ctx.startJob(
        'finetune',
        { runId: out.name, exclusive: true, models },
        (push, signal) => finetune({ ...job, out: out.dir, onEvent: push, signal }),
      );
    },

    'finetune.ablation': async (p) => {
      const job = await jobInput(p);
      const { ablation } = await import('../../engine/finetune/ablation');
      return ctx.startJob(
        'ablation',
        { exclusive: true, subject: path.basename(job.model), models: [job.model] },
        (push, signal) => ablation({ ...job, onEvent: push, signal }),
      );
    },

    'finetune.gptBert': async (p) => {
      const job = await jobInput(p);
      const { gptBert, pretrainPlanOf } = await import('../../engine/finetune/gptBert');
      // the run's record and corpus are checked now: a model without them is the request's error
      const plan = await userInput(() => pretrainPlanOf(job.model, p.pretrainSteps));
      for (const file of plan.corpus) await ctx.paths.existing(file, "the run's corpus", 'file');
      return ctx.startJob(
        'gpt-bert',
        { exclusive: true, subject: path.basename(job.model), models: [job.model] },
        (push, signal) =>
          gptBert({
            ...job,
            ...(p.pretrainSteps !== undefined ? { pretrainSteps: p.pretrainSteps } : {}),
            onEvent: push,
            signal,
          }),
      );
    },

    'finetune.evaluate': async (p) => {
      const model = await ctx.modelDir(p.model);
      const data = await resolveFile(p.data, 'params.data');
      const { evaluate } = await import('../../engine/finetune/predict');
      const options = { subject: path.basename(model), models: [model] };
      return ctx.startJob('evaluate', options, (push, signal) =>
        evaluate({
          model,
          data,
          ...(p.columns ? { columns: p.columns } : {}),
          signal,
          onProgress: (done, total) => push({ type: 'evaluate.progress', done, total }),
        }),
      );
    },

    'finetune.classify': async (p) => {
      const c = await classifier(p.model);
      const { classify } = await import('../../engine/finetune/predict');
      return userInput(() => classify(c, p.input as ClassifyInput));
    },
  };
}
