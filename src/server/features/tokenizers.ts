/**
 * The workspace's tokenizers (workspace/tokenizers/<id>/: tokenizer.json + studio.json), trained
 * on library datasets by the wizard's tokenizer step, and their previews.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { DatasetManifest, TokenizerInfo, TokenizerPreview } from '../../common/datasets';
import { DEFAULT_BPE_VOCAB } from '../../common/defaults';
import { datasetShards, readManifest } from '../../engine/data/dataset';
import { loadTokenizer, readCorpusChunks, trainTokenizer } from '../../engine/tokenizer';
import type { Tokenizer, TokenizerKind } from '../../engine/tokenizer/types';
import { writeJsonAtomic } from '../../engine/util/atomic';

export function tokenizersDir(workspace: string) {
  return path.join(workspace, 'tokenizers');
}

export async function readTokenizerInfo(dir: string): Promise<TokenizerInfo> {
  const info = JSON.parse(
    await fs.readFile(path.join(dir, 'studio.json'), 'utf8'),
  ) as TokenizerInfo;
  return { ...info, dir };
}

export async function listTokenizers(workspace: string): Promise<TokenizerInfo[]> {
  const root = tokenizersDir(workspace);
  const names = await fs.readdir(root).catch(() => [] as string[]);
  const out: TokenizerInfo[] = [];
  for (const n of names) {
    if (n.startsWith('.')) continue;
    try {
      out.push(await readTokenizerInfo(path.join(root, n)));
    } catch {
      // not a tokenizer folder
    }
  }
  return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/** Counts the tokens of a dataset's text, streamed shard by shard. */
export async function countTokens(
  tokenizer: Tokenizer,
  datasetsRoot: string,
  m: DatasetManifest,
  signal?: AbortSignal,
): Promise<number> {
  let n = 0;
  for await (const text of readCorpusChunks(datasetShards(datasetsRoot, m), 256 * 1024)) {
    signal?.throwIfAborted();
    n += tokenizer.encode(text).length;
    await new Promise((r) => setImmediate(r));
  }
  return n;
}

export interface TrainTokenizerJob {
  workspace: string;
  datasetsRoot: string;
  datasets: DatasetManifest[];
  kind: TokenizerKind;
  vocabSize?: number;
  signal: AbortSignal;
  onProgress: (p: { phase: string; fraction: number; message: string }) => void;
}

/** Trains, counts each dataset's tokens (kept in its manifest), and saves the tokenizer. */
export async function trainWorkspaceTokenizer(job: TrainTokenizerJob): Promise<TokenizerInfo> {
  const { datasets, kind } = job;
  const vocabSize = kind === 'bpe' ? (job.vocabSize ?? DEFAULT_BPE_VOCAB) : undefined;
  const shards = datasets.flatMap((d) => datasetShards(job.datasetsRoot, d));
  const tokenizer = await trainTokenizer({
    kind,
    ...(vocabSize !== undefined ? { vocabSize } : {}),
    corpus: readCorpusChunks(shards),
    signal: job.signal,
    onProgress: (p) => job.onProgress({ ...p, fraction: p.fraction * 0.7 }),
  });
  const key = createHash('sha256')
    .update(datasets.map((d) => d.contentHash).join(','))
    .digest('hex')
    .slice(0, 8);
  const id = `${kind}${kind === 'bpe' ? `-${vocabSize}` : ''}-${key}`;
  const totalChars = datasets.reduce((s, d) => s + d.stats.chars, 0);
  let tokens = 0;
  let chars = 0;
  for (const d of datasets) {
    const n = await countTokens(tokenizer, job.datasetsRoot, d, job.signal);
    tokens += n;
    chars += d.stats.chars;
    job.onProgress({
      phase: 'count',
      fraction: 0.7 + (0.3 * chars) / Math.max(1, totalChars),
      message: `Counted the tokens of ${d.name}`,
    });
    // the dataset view shows the count once this tokenizer is chosen
    const dir = path.join(job.datasetsRoot, d.id);
    const m = await readManifest(dir);
    m.tokenCounts = { ...m.tokenCounts, [id]: n };
    await writeJsonAtomic(path.join(dir, 'manifest.json'), m);
  }
  const dir = path.join(tokenizersDir(job.workspace), id);
  await fs.mkdir(dir, { recursive: true });
  await tokenizer.save(dir);
  const info: TokenizerInfo = {
    id,
    kind,
    vocabSize: tokenizer.vocabSize,
    datasets: datasets.map((d) => d.id),
    tokens,
    charsPerToken: tokens > 0 ? totalChars / tokens : 0,
    createdAt: new Date().toISOString(),
    dir,
  };
  await writeJsonAtomic(path.join(dir, 'studio.json'), info);
  return info;
}

/** Tokens shown for the vocabulary sample: the latest merges (BPE) or the characters (char). */
function vocabSample(t: Tokenizer, n = 48): string[] {
  const out: string[] = [];
  const special = new Set(t.specialTokens.values());
  const text = (id: number) => {
    const d = t.streamDecoder();
    return d.push(id) + d.flush();
  };
  if (t.kind === 'bpe') {
    // ids above the 256 byte tokens are merges; the last ones are the longest words
    for (let id = t.vocabSize - 1; id >= 256 && out.length < n; id--) {
      if (!special.has(id)) out.push(text(id));
    }
  } else {
    for (let id = 0; id < t.vocabSize && out.length < n * 2; id++) {
      if (!special.has(id)) out.push(text(id));
    }
  }
  return out;
}

export async function previewTokenizer(
  dir: string,
  m: DatasetManifest,
  info: TokenizerInfo,
): Promise<TokenizerPreview> {
  const t = await loadTokenizer(dir);
  const lines = m.stats.preview
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(0, 6)
    .map((l) => [...l].slice(0, 160).join(''));
  return {
    vocabSample: vocabSample(t),
    lines: lines.map((line) => {
      const d = t.streamDecoder();
      const pieces: Array<{ id: number; text: string }> = [];
      for (const id of t.encode(line)) pieces.push({ id, text: d.push(id) });
      const rest = d.flush();
      if (rest && pieces.length) pieces[pieces.length - 1]!.text += rest;
      return pieces;
    }),
    charsPerToken: info.charsPerToken,
  };
}
