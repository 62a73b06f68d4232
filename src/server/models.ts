/**
 * `models.list`: every model directory the console and the wizards can use — pretraining runs
 * (runs/), fine-tunes (finetunes/), imported models (models/) and the app's bundled ones
 * (resources/models/). A folder counts when it has a readable config.json.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { ModelInfo, ModelSource } from '../common/api';
import { countParams } from '../engine/model/params';
import type { HostContext } from './context';

const num = (v: unknown, fallback = 0) =>
  typeof v === 'number' && Number.isFinite(v) ? v : fallback;

/** GPT-2's parameter count from its config.json's fields. */
export function paramsFromConfig(c: Record<string, unknown>): number {
  return countParams({
    vocabSize: num(c.vocab_size),
    blockSize: num(c.n_positions ?? c.n_ctx),
    nLayer: num(c.n_layer),
    nEmbd: num(c.n_embd),
  });
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
    params: paramsFromConfig(config),
    vocabSize: num(config.vocab_size),
    blockSize: num(config.n_positions ?? config.n_ctx),
    nLayer: num(config.n_layer),
    nEmbd: num(config.n_embd),
    tokenizer: await tokenizerKind(dir),
    ...(studio && typeof studio.task === 'string'
      ? { classifier: { task: studio.task, labels } }
      : {}),
    updatedAt: stat.mtime.toISOString(),
  };
}

export async function listModels(ctx: HostContext): Promise<ModelInfo[]> {
  const roots: Array<[string, ModelSource]> = [
    [ctx.runsDir, 'run'],
    [path.join(ctx.workspace, 'finetunes'), 'finetune'],
    [path.join(ctx.workspace, 'models'), 'imported'],
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
  // the user's own newest first; bundled samples last
  return out.sort((a, b) =>
    (a.source === 'sample') !== (b.source === 'sample')
      ? a.source === 'sample'
        ? 1
        : -1
      : b.updatedAt.localeCompare(a.updatedAt),
  );
}
