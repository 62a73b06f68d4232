/**
 * What the Get models page offers: the curated GPT-2 family with each one's download size and
 * the memory it needs on this machine's backend, and the GPT-2 snapshots already in the shared
 * cache (pulled here, or downloaded by Python's transformers).
 */
import { backendMemoryBudget, getBackendReport } from '../backend';
import { machineMemoryBudget, type MemoryBudget } from '../checkpoint/config';
import type { GPTConfig } from '../model/config';
import { countParams } from '../model/params';
import {
  inferenceNeed,
  KERNEL_MEMORY_MAX,
  WEIGHT_FORMATS,
  type WeightFormat,
} from '../weights/format';
import type { HubModelEntry } from '../../common/hub';
import { isUsableSnapshot, scanHubCache, type CachedSnapshot } from './cache';

export type ModelShape = Pick<GPTConfig, 'vocabSize' | 'blockSize' | 'nLayer' | 'nHead' | 'nEmbd'>;

const GPT2 = { vocabSize: 50257, blockSize: 1024 };

/**
 * The GPT-2 family on the Hub, smallest first (shapes from their config.json), with the names
 * the Hub moved them to (a cache made through those names counts too).
 */
export const CURATED: ReadonlyArray<{ repo: string; aliases: string[]; shape: ModelShape }> = [
  {
    repo: 'distilgpt2',
    aliases: ['distilbert/distilgpt2'],
    shape: { ...GPT2, nLayer: 6, nHead: 12, nEmbd: 768 },
  },
  {
    repo: 'gpt2',
    aliases: ['openai-community/gpt2'],
    shape: { ...GPT2, nLayer: 12, nHead: 12, nEmbd: 768 },
  },
  {
    repo: 'gpt2-medium',
    aliases: ['openai-community/gpt2-medium'],
    shape: { ...GPT2, nLayer: 24, nHead: 16, nEmbd: 1024 },
  },
  {
    repo: 'gpt2-large',
    aliases: ['openai-community/gpt2-large'],
    shape: { ...GPT2, nLayer: 36, nHead: 20, nEmbd: 1280 },
  },
  {
    repo: 'gpt2-xl',
    aliases: ['openai-community/gpt2-xl'],
    shape: { ...GPT2, nLayer: 48, nHead: 25, nEmbd: 1600 },
  },
];

/**
 * The size of a GPT-2 model.safetensors on the Hub: float32 parameters plus each layer's
 * causal-mask buffer (attn.bias, T × T floats), which the Hub's files carry.
 */
export function safetensorsBytes(s: ModelShape): number {
  return countParams(s) * 4 + s.nLayer * s.blockSize * s.blockSize * 4;
}

export interface MemoryNeed {
  /** What the backend can hold, and who holds it. */
  budget: MemoryBudget;
  /** What inference needs at each weight format (weights, KV cache, activations). */
  needs: Record<WeightFormat, number>;
  /** The format `auto` would load it as, or null when none fits. */
  auto: WeightFormat | null;
}

/** The memory `shape` needs for inference on the running backend, and the format that fits. */
export function memoryNeed(shape: ModelShape): MemoryNeed {
  const budget = backendMemoryBudget() ?? machineMemoryBudget();
  const packedCopies = getBackendReport()?.name === 'wasm';
  const plans = WEIGHT_FORMATS.map((f) => inferenceNeed(shape, f, { packedCopies }));
  const fits = plans.find(
    (p) =>
      p.needBytes <= budget.bytes && (p.format === 'f32' || p.weightBytes <= KERNEL_MEMORY_MAX),
  );
  return {
    budget,
    needs: Object.fromEntries(plans.map((p) => [p.format, p.needBytes])) as Record<
      WeightFormat,
      number
    >,
    auto: fits?.format ?? null,
  };
}

const int = (v: unknown) => (typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : 0);

/** A cached snapshot's shape from its config.json, or null when it is not GPT-2. */
export function snapshotShape(s: Pick<CachedSnapshot, 'config'>): ModelShape | null {
  const c = s.config;
  if (!c || (c.model_type !== undefined && c.model_type !== 'gpt2')) return null;
  const shape = {
    vocabSize: int(c.vocab_size),
    blockSize: int(c.n_positions ?? c.n_ctx),
    nLayer: int(c.n_layer),
    nHead: int(c.n_head),
    nEmbd: int(c.n_embd),
  };
  return Object.values(shape).every((v) => v > 0) ? shape : null;
}

/** The GPT-2 snapshots in the cache that the engine can load. */
export async function cachedGpt2(cacheDir: string): Promise<CachedSnapshot[]> {
  return (await scanHubCache(cacheDir)).filter((s) => isUsableSnapshot(s) && snapshotShape(s));
}

/** How a snapshot is named in model lists: the repo, with its revision when it is not main. */
export function snapshotName(s: Pick<CachedSnapshot, 'repoId' | 'refs' | 'commit'>): string {
  if (s.refs.includes('main')) return s.repoId;
  return `${s.repoId}@${s.refs[0] ?? s.commit.slice(0, 10)}`;
}

/** main's snapshot first, then the newest. */
const preferred = (a: CachedSnapshot, b: CachedSnapshot) =>
  Number(b.refs.includes('main')) - Number(a.refs.includes('main')) ||
  b.updatedAt.localeCompare(a.updatedAt);

function entry(
  name: string,
  repo: string,
  curated: boolean,
  shape: ModelShape,
  snap: CachedSnapshot | undefined,
): HubModelEntry {
  const m = memoryNeed(shape);
  return {
    name,
    repo,
    curated,
    params: countParams(shape),
    nLayer: shape.nLayer,
    nEmbd: shape.nEmbd,
    sizeBytes: snap ? snap.bytes : safetensorsBytes(shape),
    memory: { budgetBytes: m.budget.bytes, holder: m.budget.holder, needs: m.needs, auto: m.auto },
    cached: snap
      ? { ref: snap.dir, commit: snap.commit, revisions: snap.refs, bytes: snap.bytes }
      : null,
  };
}

/**
 * The Get models page's list: each curated model (cached or not), then every other GPT-2
 * snapshot in the cache, each with its size and the memory it needs on this backend.
 */
export async function hubCatalog(cacheDir: string): Promise<HubModelEntry[]> {
  const cached = await cachedGpt2(cacheDir);
  const used = new Set<CachedSnapshot>();
  const out: HubModelEntry[] = [];
  for (const c of CURATED) {
    const names = [c.repo, ...c.aliases];
    const snaps = cached.filter((s) => names.includes(s.repoId)).sort(preferred);
    snaps.forEach((s) => used.add(s));
    out.push(entry(c.repo, c.repo, true, snaps[0] ? snapshotShape(snaps[0])! : c.shape, snaps[0]));
  }
  for (const s of cached.filter((x) => !used.has(x))) {
    out.push(entry(snapshotName(s), s.repoId, false, snapshotShape(s)!, s));
  }
  return out;
}
