/**
 * `models.list`: every model directory the console and the wizards can use — pretraining runs
 * (runs/), fine-tunes (finetunes/), imported models (models/), the GPT-2 snapshots of the shared
 * Hugging Face cache (pulled, or downloaded by Python) and the app's bundled ones
 * (resources/models/). A folder counts when it has a readable config.json. `models.delete`: the
 * workspace's own ones go, nothing else.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { apiError, type ModelInfo, type ModelKind, type ModelSource } from '../common/api';
import { countParams } from '../engine/model/params';
import { HostError, type HostContext } from './context';

const KIND: Record<ModelSource, ModelKind> = {
  run: 'pretrained',
  finetune: 'fine-tuned',
  imported: 'imported',
  sample: 'pretrained',
  hub: 'imported',
};

/** What a model from `source` is. */
export const modelKind = (source: ModelSource): ModelKind => KIND[source];

/** The workspace folders whose models the app made or imported, by where they came from. */
export function workspaceModelRoots(ctx: Pick<HostContext, 'workspace' | 'runsDir'>) {
  return [
    [ctx.runsDir, 'run'],
    [path.join(ctx.workspace, 'finetunes'), 'finetune'],
    [path.join(ctx.workspace, 'models'), 'imported'],
  ] as Array<[string, ModelSource]>;
}

const num = (v: unknown, fallback = 0) =>
  typeof v === 'number' && Number.isFinite(v) ? v : fallback;

/** GPT-2's parameter count from its config.json's fields (GPT-1's layout: without ln_f). */
export function paramsFromConfig(c: Record<string, unknown>): number {
  return countParams({
    vocabSize: num(c.vocab_size),
    blockSize: num(c.n_positions ?? c.n_ctx),
    nLayer: num(c.n_layer),
    nEmbd: num(c.n_embd),
    layout: layoutFromConfig(c),
  });
}

/** config.json's LayerNorm layout: 'gpt1' when it says so, else GPT-2's. */
export function layoutFromConfig(c: Record<string, unknown>): 'gpt1' | 'gpt2' {
  return c.layout === 'gpt1' ? 'gpt1' : 'gpt2';
}

/** 'char' or 'bpe' by the tokenizer's structure (both save a BPE-typed tokenizer.json). */
export async function tokenizerKind(dir: string): Promise<string> {
  try {
    const { readTokenizerDir } = await import('../engine/tokenizer/hf');
    return (await readTokenizerDir(dir)).data.kind;
  } catch {
    return 'unknown';
  }
}

async function describe(dir: string, source: ModelSource): Promise<ModelInfo | null> {
  let config: Record<string, unknown>;
  let stat;
  try {
    const file = path.join(dir, 'config.json');
    config = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
    stat = await fs.stat(file);
  } catch {
    return null;
  }
  const studio = (config.gpt_studio ?? null) as { task?: unknown } | null;
  const id2label = (config.id2label ?? null) as Record<string, unknown> | null;
  const labels =
    id2label && typeof id2label === 'object'
      ? Object.keys(id2label)
          .sort((a, b) => Number(a) - Number(b))
          .map((k) => String(id2label[k]))
      : [];
  return {
    ref: dir,
    name: path.basename(dir),
    source,
    kind: modelKind(source),
    params: paramsFromConfig(config),
    vocabSize: num(config.vocab_size),
    blockSize: num(config.n_positions ?? config.n_ctx),
    nLayer: num(config.n_layer),
    nHead: num(config.n_head),
    nEmbd: num(config.n_embd),
    layout: layoutFromConfig(config),
    ...(config.objective === 'mlm' ? { objective: 'mlm' as const } : {}),
    tokenizer: await tokenizerKind(dir),
    ...(studio && typeof studio.task === 'string'
      ? { classifier: { task: studio.task, labels } }
      : {}),
    updatedAt: stat.mtime.toISOString(),
  };
}

/** The GPT-2 snapshots in the shared Hugging Face cache ($HF_HOME/hub): pulled, or Python's. */
async function hubModels(): Promise<ModelInfo[]> {
  const { hubCacheDir } = await import('../engine/hub/cache');
  const { cachedGpt2, snapshotName } = await import('../engine/hub/catalog');
  const out: ModelInfo[] = [];
  for (const snap of await cachedGpt2(hubCacheDir())) {
    const info = await describe(snap.dir, 'hub');
    if (info) out.push({ ...info, name: snapshotName(snap), updatedAt: snap.updatedAt });
  }
  return out;
}

export async function listModels(ctx: HostContext): Promise<ModelInfo[]> {
  const roots: Array<[string, ModelSource]> = [
    ...workspaceModelRoots(ctx),
    [path.join(ctx.resourcesDir, 'models'), 'sample'],
  ];
  const out: ModelInfo[] = [];
  for (const [root, source] of roots) {
    const names = await fs.readdir(root).catch(() => [] as string[]);
    for (const n of names.sort()) {
      const info = await describe(path.join(root, n), source);
      if (info) out.push(info);
    }
  }
  out.push(...(await hubModels()));
  // the user's own newest first; bundled samples last
  return out.sort((a, b) =>
    (a.source === 'sample') !== (b.source === 'sample')
      ? a.source === 'sample'
        ? 1
        : -1
      : b.updatedAt.localeCompare(a.updatedAt),
  );
}

const realOr = (p: string) => fs.realpath(p).catch(() => path.resolve(p));

/**
 * Deletes the model folder `ref` (a run id, or a folder's path): only a folder directly under the
 * workspace's runs/, finetunes/ or models/, checked on its real path whatever the path access
 * allows, and never while a job reads or writes it.
 */
export async function deleteModel(ctx: HostContext, ref: string): Promise<{ deleted: true }> {
  const shown = path.normalize(path.isAbsolute(ref) ? ref : path.join(ctx.runsDir, ref));
  // browser mode's allow-list first: a path outside it is forbidden before anything is looked at
  const real = await ctx.paths.existing(shown, 'params.model', 'dir');
  const roots = await Promise.all(workspaceModelRoots(ctx).map(([root]) => realOr(root)));
  const parent = path.dirname(real);
  if (!roots.includes(parent)) {
    throw new HostError(
      apiError(
        'forbidden',
        `params.model: ${shown} is not a model of this workspace (a folder in ${workspaceModelRoots(
          ctx,
        )
          .map(([root]) => root)
          .join(', ')}); only those can be deleted`,
      ),
    );
  }
  const job = ctx.jobUsing(shown) ?? ctx.jobUsing(real);
  if (job) {
    throw new HostError(
      apiError(
        'busy',
        `params.model: ${path.basename(real)} is in use by a running job (${job}); stop it or wait for it to end before deleting it`,
        { jobId: job },
      ),
    );
  }
  await fs.rm(real, { recursive: true, force: true });
  return { deleted: true };
}
