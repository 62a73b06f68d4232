/**
 * The engine host's handlers for the checkpoints feature's requests (src/common/checkpoints.ts):
 * export and import run as background jobs with progress and cancel; a bad checkpoint fails the
 * job with a message naming the file and tensor, never the host.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { apiError } from '../../common/api';
import type { CheckpointInfo, ExportFormat, FormatAvailability } from '../../common/checkpoints';
import { HostError, type HostContext, type Handlers } from '../context';
import { layoutFromConfig, tokenizerKind } from '../models';

const FORMATS: ExportFormat[] = ['hf', 'gguf', 'cluster'];

/** Whether the folder's config.json says GPT-1's post-LayerNorm layout (no GGUF for it). */
async function isGpt1Layout(dir: string): Promise<boolean> {
  try {
    const c = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as unknown;
    return (
      !!c && typeof c === 'object' && layoutFromConfig(c as Record<string, unknown>) === 'gpt1'
    );
  } catch {
    return false;
  }
}

/** Whether the folder's config.json says a masked-LM objective (no GGUF or HF export for it). */
async function isMaskedLmDir(dir: string): Promise<boolean> {
  try {
    const c = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as {
      objective?: unknown;
    } | null;
    return c?.objective === 'mlm';
  } catch {
    return false;
  }
}

/** Whether a Hugging Face folder can be written for this folder: not for a masked-LM. */
async function hfAvailability(dir: string): Promise<FormatAvailability> {
  if (!(await isMaskedLmDir(dir))) return { ok: true };
  const { maskedLmExportRefusal } = await import('../../engine/checkpoint/export');
  return {
    ok: false,
    code: 'mlm',
    reason: maskedLmExportRefusal({ objective: 'mlm' }, 'hf')!,
  };
}

/** Why GGUF is refused for this folder (objective, layout, then the tokenizer), or null. */
async function ggufAvailability(dir: string, kind: string) {
  const { ggufRefusal, maskedLmExportRefusal, POST_LN_GGUF_REFUSAL } =
    await import('../../engine/checkpoint/export');
  if (await isMaskedLmDir(dir)) {
    const reason = maskedLmExportRefusal({ objective: 'mlm' }, 'gguf')!;
    return { ok: false, reason, code: 'mlm' as const };
  }
  if (await isGpt1Layout(dir)) {
    return { ok: false, reason: POST_LN_GGUF_REFUSAL, code: 'post-ln' as const };
  }
  const why = ggufRefusal(kind);
  return why ? { ok: false, reason: why, code: 'char-tokenizer' as const } : { ok: true };
}

/**
 * Whether the cluster export takes this folder: GPT-2's pre-LayerNorm causal LM (not GPT-1's
 * layout, not a masked-LM), with a training record naming its corpus.
 */
async function clusterAvailability(dir: string): Promise<FormatAvailability> {
  const { clusterConfigRefusal } = await import('../../engine/checkpoint/export');
  let config: Record<string, unknown> = {};
  try {
    const c = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as unknown;
    if (c && typeof c === 'object') config = c as Record<string, unknown>;
  } catch {
    // the export itself names an unreadable config.json
  }
  const why = clusterConfigRefusal(config);
  if (why) {
    const code = layoutFromConfig(config) === 'gpt1' ? 'cluster-post-ln' : 'cluster-mlm';
    return { ok: false, code, reason: why };
  }
  if (await hasCorpus(dir)) return { ok: true };
  return {
    ok: false,
    code: 'no-dataset',
    reason:
      'this model has no training record (state.json with its corpus), so there is no dataset to send along',
  };
}

async function hasCorpus(dir: string): Promise<boolean> {
  try {
    const s = JSON.parse(await fs.readFile(path.join(dir, 'state.json'), 'utf8')) as {
      corpus?: unknown[];
    };
    return Array.isArray(s.corpus) && s.corpus.length > 0;
  } catch {
    return false;
  }
}

export function checkpointHandlers(ctx: HostContext): Handlers {
  const exportsDir = path.join(ctx.workspace, 'exports');
  const suggested = (name: string, format: ExportFormat) =>
    path.join(exportsDir, `${name}-${format}`);

  const badOut = async (out: string, field: string) => {
    const { checkDestination } = await import('../../engine/checkpoint/stage');
    try {
      await checkDestination(out, field);
    } catch (err) {
      throw new HostError(apiError('bad-request', (err as Error).message));
    }
  };

  return {
    'checkpoints.inspect': async (p): Promise<CheckpointInfo> => {
      const dir = await ctx.modelDir(p.model);
      const name = path.basename(dir);
      const kind = await tokenizerKind(dir);
      const gguf = await ggufAvailability(dir, kind);
      return {
        dir,
        name,
        tokenizer: kind,
        formats: { hf: await hfAvailability(dir), gguf, cluster: await clusterAvailability(dir) },
        suggestedOut: Object.fromEntries(FORMATS.map((f) => [f, suggested(name, f)])) as Record<
          ExportFormat,
          string
        >,
      };
    },

    'checkpoints.export': async (p) => {
      const dir = await ctx.modelDir(p.model);
      const out = await ctx.paths.destination(
        p.out ?? suggested(path.basename(dir), p.format),
        'params.out',
      );
      await badOut(out, 'params.out');
      if (p.format === 'hf') {
        const hf = await hfAvailability(dir);
        if (!hf.ok) throw new HostError(apiError('bad-request', `params.format: ${hf.reason}`));
      }
      if (p.format === 'gguf') {
        const gguf = await ggufAvailability(dir, await tokenizerKind(dir));
        if (!gguf.ok) throw new HostError(apiError('bad-request', `params.format: ${gguf.reason}`));
      }
      if (p.format === 'cluster') {
        const cluster = await clusterAvailability(dir);
        if (!cluster.ok && cluster.code !== 'no-dataset') {
          throw new HostError(apiError('bad-request', `params.format: ${cluster.reason}`));
        }
      }
      const { exportModel } = await import('../../engine/checkpoint/export');
      const options = { subject: path.basename(dir), models: [dir] };
      return ctx.startJob('export', options, async (push, signal) => {
        const r = await exportModel({
          model: dir,
          out,
          format: p.format,
          dtype: p.dtype,
          ...(p.name ? { name: p.name } : {}),
          signal,
          onProgress: (e) => push({ type: 'checkpoints.progress', ...e }),
        });
        return { type: 'checkpoints.result', operation: 'export', ...r };
      });
    },

    'checkpoints.import': async (p) => {
      const from = await ctx.paths.existing(p.from, 'params.from', 'dir').catch((err: unknown) => {
        if (err instanceof HostError && err.apiError.code !== 'forbidden') {
          throw new HostError(apiError('not-found', `${err.message} (expected a GPT-2 folder)`));
        }
        throw err;
      });
      const name = p.name ?? path.basename(from).replace(/[^A-Za-z0-9._-]+/g, '-');
      const out = await ctx.paths.destination(
        p.out ?? path.join(ctx.workspace, 'models', name),
        p.out ? 'params.out' : 'params.name',
      );
      await badOut(out, p.out ? 'params.out' : 'params.name');
      const { importModel } = await import('../../engine/checkpoint/import');
      const options = { subject: path.basename(from), models: [out] };
      return ctx.startJob('import', options, async (push, signal) => {
        const r = await importModel({
          from,
          out,
          signal,
          onProgress: (e) => push({ type: 'checkpoints.progress', ...e }),
        });
        return { type: 'checkpoints.result', operation: 'import', ...r };
      });
    },
  };
}
