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

/** The folder's config.json as written, or {} when it cannot be read (the export names why). */
async function readConfigJson(dir: string): Promise<Record<string, unknown>> {
  try {
    const c = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as unknown;
    return c && typeof c === 'object' ? (c as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * Which export formats take this folder, each with why not, from one read of its config.json:
 * - hf: not a masked-LM;
 * - gguf: not a masked-LM, not GPT-1's post-LayerNorm layout, a byte-level BPE tokenizer;
 * - cluster: GPT-2's pre-LayerNorm causal LM, with a training record naming its corpus.
 */
async function formatAvailability(
  dir: string,
  kind: string,
): Promise<Record<ExportFormat, FormatAvailability>> {
  const { clusterConfigRefusal, ggufRefusal, maskedLmExportRefusal, POST_LN_GGUF_REFUSAL } =
    await import('../../engine/checkpoint/export');
  const config = await readConfigJson(dir);
  const masked = config as { objective?: 'clm' | 'mlm' };
  const hfMlm = maskedLmExportRefusal(masked, 'hf');
  const ggufMlm = maskedLmExportRefusal(masked, 'gguf');
  const ggufTokenizer = ggufRefusal(kind);
  const gpt1 = layoutFromConfig(config) === 'gpt1';
  const clusterWhy = clusterConfigRefusal(config);
  return {
    hf: hfMlm ? { ok: false, code: 'mlm', reason: hfMlm } : { ok: true },
    gguf: ggufMlm
      ? { ok: false, code: 'mlm', reason: ggufMlm }
      : gpt1
        ? { ok: false, code: 'post-ln', reason: POST_LN_GGUF_REFUSAL }
        : ggufTokenizer
          ? { ok: false, code: 'char-tokenizer', reason: ggufTokenizer }
          : { ok: true },
    cluster: clusterWhy
      ? { ok: false, code: gpt1 ? 'cluster-post-ln' : 'cluster-mlm', reason: clusterWhy }
      : (await hasCorpus(dir))
        ? { ok: true }
        : {
            ok: false,
            code: 'no-dataset',
            reason:
              'this model has no training record (state.json with its corpus), so there is no dataset to send along',
          },
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
      return {
        dir,
        name,
        tokenizer: kind,
        formats: await formatAvailability(dir, kind),
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
      // refused up front, before a job starts; a cluster export without a corpus is the
      // exporter's own error (it names the missing state.json)
      const avail = (await formatAvailability(dir, await tokenizerKind(dir)))[p.format];
      if (!avail.ok && avail.code !== 'no-dataset') {
        throw new HostError(apiError('bad-request', `params.format: ${avail.reason}`));
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
