/**
 * The engine host's handlers for the datasets feature (src/common/datasets.ts): the dataset
 * library (seeded with the bundled Austen sample on first use), imports as jobs, and the
 * workspace's tokenizers (the pretrain wizard's tokenizer step).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { apiError } from '../../common/api';
import type { DatasetManifest, LibraryTable } from '../../common/datasets';
import {
  datasetShards,
  importDataset,
  inspectFile,
  listDatasets,
  readManifest,
  readTextAt,
} from '../../engine/data/dataset';
import { writeJsonAtomic } from '../../engine/util/atomic';
import { HostError, type Handlers, type HostContext } from '../context';
import {
  countTokens,
  listTokenizers,
  previewTokenizer,
  readTokenizerInfo,
  tokenizersDir,
  trainWorkspaceTokenizer,
} from './tokenizers';
import { exists } from '../../engine/util/fs';

/** The bundled corpus the library starts with, so a new user can train at once. */
export const SAMPLE_CORPUS = { file: 'samples/austen.txt', name: 'Jane Austen (sample)' };

/**
 * The library's datasets and the workspace's tokenizers by id, for this feature and the pretrain
 * feature's wizard: a missing one is a not-found naming the field.
 */
export function datasetLibrary(ctx: HostContext) {
  const root = path.join(ctx.workspace, 'datasets');
  const dataset = async (id: string, field = 'params.id'): Promise<DatasetManifest> => {
    try {
      return await readManifest(path.join(root, id));
    } catch {
      throw new HostError(apiError('not-found', `${field}: dataset "${id}" not found in ${root}`));
    }
  };
  const tokenizer = async (id: string) => {
    try {
      return await readTokenizerInfo(path.join(tokenizersDir(ctx.workspace), id));
    } catch {
      throw new HostError(
        apiError('not-found', `params.tokenizer: tokenizer "${id}" not found; train one first`),
      );
    }
  };
  /** The text shards of the datasets `ids` (params.datasets). */
  const shardsOf = async (ids: string[]) => {
    const out: string[] = [];
    for (const [i, id] of ids.entries()) {
      out.push(...datasetShards(root, await dataset(id, `params.datasets.${i}`)));
    }
    return out;
  };
  return { root, dataset, tokenizer, shardsOf };
}

export function datasetHandlers(ctx: HostContext): Handlers {
  const { root, dataset, tokenizer } = datasetLibrary(ctx);
  let seeding: Promise<void> | null = null;

  /** On first use the library gets the sample corpus (once: deleting it is respected). */
  const seed = () =>
    (seeding ??= (async () => {
      const marker = path.join(root, '.seeded');
      if (await exists(marker)) return;
      const file = path.join(ctx.resourcesDir, SAMPLE_CORPUS.file);
      if (await exists(file)) {
        try {
          await importDataset({ root, paths: [file], name: SAMPLE_CORPUS.name, source: 'sample' });
        } catch (err) {
          ctx.emit({
            type: 'log',
            level: 'warn',
            message: `the sample corpus was not added: ${(err as Error).message}`,
          });
        }
      }
      await fs.mkdir(root, { recursive: true });
      await fs.writeFile(marker, new Date().toISOString());
    })());

  return {
    'datasets.list': async () => {
      await seed();
      return listDatasets(root);
    },
    'datasets.get': async (p) => {
      const m = await dataset(p.id);
      const valFraction = p.valFraction ?? 0.1;
      const valBytes = Math.round(m.stats.bytes * valFraction);
      const valPreview =
        valBytes > 0 ? await readTextAt(root, m, m.stats.bytes - valBytes, 400) : '';
      return {
        dataset: m,
        split: { valFraction, trainBytes: m.stats.bytes - valBytes, valBytes, valPreview },
      };
    },
    'datasets.inspect': async (p) =>
      inspectFile(await ctx.paths.existing(p.path, 'params.path', 'file')),
    'datasets.import': async (p) => {
      // browser uploads are copies: imported or refused, they are not needed any more. Only
      // paths this host handed out for an upload are removed, never anything else a request names.
      const releaseUploads = () => Promise.all(p.paths.map((f) => ctx.releaseUpload(f)));
      const real: string[] = [];
      try {
        for (const [i, f] of p.paths.entries()) {
          real.push(await ctx.paths.existing(f, `params.paths.${i}`, 'any'));
        }
      } catch (err) {
        await releaseUploads();
        throw err;
      }
      await seed();
      /** Messages name the user's own file, not the upload's copy of it. */
      const named = (message: string) =>
        p.paths.reduce(
          (m, f, i) =>
            p.names?.[i] ? m.split(real[i]!).join(p.names[i]).split(f).join(p.names[i]) : m,
          message,
        );
      const subject = p.name ?? p.names?.[0] ?? path.basename(p.paths[0] ?? '');
      return ctx.startJob('dataset.import', { subject }, async (push, signal) => {
        try {
          const r = await importDataset({
            root,
            paths: real,
            // a folder's links must not lead out of what this host may read
            mayRead: async (file, shown) => {
              await ctx.paths.existing(file, shown, 'file');
            },
            ...(p.names ? { displayNames: p.names } : {}),
            ...(p.name ? { name: p.name } : {}),
            ...(p.field ? { field: p.field } : {}),
            source: 'import',
            signal,
            onProgress: (e) => push({ type: 'dataset.progress', ...e }),
          });
          return { type: 'dataset.result', dataset: r.manifest, duplicate: r.duplicate };
        } catch (err) {
          throw new Error(named((err as Error).message));
        } finally {
          await releaseUploads();
        }
      });
    },
    'datasets.tables': async (): Promise<LibraryTable[]> => {
      await seed();
      return (await listDatasets(root)).flatMap((d) =>
        d.files.flatMap((f) =>
          f.stored && /^sources\/[^/\\]+$/.test(f.stored) && !f.stored.endsWith('/..')
            ? [
                {
                  dataset: d.id,
                  datasetName: d.name,
                  name: f.name.split(/[\\/]/).pop() ?? f.name,
                  format: f.format,
                  bytes: f.bytes,
                  path: path.join(root, d.id, ...f.stored.split('/')),
                },
              ]
            : [],
        ),
      );
    },
    'datasets.delete': async (p) => {
      await dataset(p.id);
      await fs.rm(path.join(root, p.id), { recursive: true, force: true });
      return { deleted: true };
    },
    'datasets.tokens': async (p) => {
      const m = await dataset(p.id);
      const tok = await tokenizer(p.tokenizer);
      let tokens = m.tokenCounts[tok.id];
      if (tokens === undefined) {
        const { loadTokenizer } = await import('../../engine/tokenizer');
        tokens = await countTokens(await loadTokenizer(tok.dir), root, m);
        const fresh = await dataset(p.id);
        fresh.tokenCounts = { ...fresh.tokenCounts, [tok.id]: tokens };
        await writeJsonAtomic(path.join(root, p.id, 'manifest.json'), fresh);
      }
      return { tokens, charsPerToken: tokens > 0 ? m.stats.chars / tokens : 0 };
    },
    'tokenizers.list': () => listTokenizers(ctx.workspace),
    'tokenizers.train': async (p) => {
      const datasets: DatasetManifest[] = [];
      for (const [i, id] of p.datasets.entries()) {
        datasets.push(await dataset(id, `params.datasets.${i}`));
      }
      if (p.kind === 'bpe' && p.vocabSize !== undefined && p.vocabSize < 258) {
        throw new HostError(
          apiError('bad-request', 'params.vocabSize: a BPE vocabulary needs at least 258 tokens'),
        );
      }
      return ctx.startJob('tokenizer.train', {}, async (push, signal) => ({
        type: 'tokenizer.result',
        tokenizer: await trainWorkspaceTokenizer({
          workspace: ctx.workspace,
          datasetsRoot: root,
          datasets,
          kind: p.kind,
          ...(p.vocabSize !== undefined ? { vocabSize: p.vocabSize } : {}),
          signal,
          onProgress: (e) => push({ type: 'tokenizer.progress', ...e }),
        }),
      }));
    },
    'tokenizers.preview': async (p) => {
      const info = await tokenizer(p.id);
      return previewTokenizer(info.dir, await dataset(p.dataset, 'params.dataset'), info);
    },
  };
}
