/**
 * The engine host's loaded models, shared by every request that needs weights (generate, score,
 * console.score, the in-context evaluation): an LRU bounded by a byte budget, so repeated prompts do
 * not reload the same weights.
 *
 * Entries are keyed by the model folder and its files' mtime and size, so a model retrained or
 * re-imported in place is loaded afresh. A caller holds a lease while it uses a model and releases
 * it when done; nobody disposes a shared model. An entry evicted while leased (a long generation
 * while other models are loaded) leaves the cache at once and is disposed when its last lease ends.
 *
 * Two memories, two budgets: float32 weights live in the backend's memory (the wasm heap that
 * training needs too), weights held as f16/q8 in the inference kernels' own memory
 * (src/engine/weights/kernels.ts, up to 4 GiB of its own). gpt2-xl at q8 (1.55 GiB) stays loaded
 * between prompts under the second budget without taking any of the first.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { LoadedModel } from '../engine/checkpoint/modelDir';

/** A model on loan from the cache: use it, then call `release()` once (never `model.dispose()`). */
export interface ModelLease extends LoadedModel {
  release(): void;
}

export interface ModelCacheOptions {
  /** Loads a model folder (the host: loadModelDir). */
  load: (dir: string) => Promise<LoadedModel>;
  /**
   * The most bytes of float32 weights kept loaded (in the backend's memory); read at each acquire
   * (it may depend on the backend).
   */
  budgetBytes: number | (() => number);
  /**
   * The most bytes of f16/q8 weights kept loaded in the kernels' memory (default
   * DEFAULT_STORED_CACHE_BYTES).
   */
  storedBudgetBytes?: number;
  /**
   * How a folder is to be loaded (e.g. its weights' format), part of its key: a folder asked for
   * another way is loaded afresh, and its other version leaves the cache once unused.
   */
  variant?: (dir: string) => string;
}

export interface ModelCacheStats {
  entries: number;
  /** Bytes of the cached entries' weights (leased entries evicted already are not counted). */
  bytes: number;
  budgetBytes: number;
  /** The same for weights held as f16/q8, in the kernels' memory. */
  storedBytes: number;
  storedBudgetBytes: number;
  /** Loads from disk since the cache was made. */
  loads: number;
  hits: number;
  evictions: number;
}

interface Entry {
  key: string;
  dir: string;
  loaded: LoadedModel;
  bytes: number;
  /** Where its weights live: the backend's memory (float32) or the kernels' (f16/q8). */
  pool: Pool;
  leases: number;
  lastUsed: number;
  /** Out of the cache: disposed when the last lease ends. */
  evicted: boolean;
  disposed: boolean;
}

type Pool = 'f32' | 'stored';

/** The budget's ceiling when none is configured: 1 GiB. */
export const DEFAULT_MODEL_CACHE_BYTES = 1024 ** 3;

/** The stored (f16/q8) weights kept loaded: half the kernels' 4 GiB, room for gpt2-xl at q8. */
export const DEFAULT_STORED_CACHE_BYTES = 2 * 1024 ** 3;

/**
 * The budget when none is configured: `GPT_STUDIO_MODEL_CACHE_MB` if set, else the smaller of
 * 1 GiB and a quarter of the backend's memory limit (wasm: 4 GiB heap → 1 GiB).
 */
export function defaultModelCacheBytes(
  backendMemoryLimitBytes: number | undefined,
  env: NodeJS.ProcessEnv = process.env,
): number {
  const mb = Number(env.GPT_STUDIO_MODEL_CACHE_MB);
  if (env.GPT_STUDIO_MODEL_CACHE_MB !== undefined && Number.isFinite(mb) && mb >= 0) {
    return Math.floor(mb * 1024 * 1024);
  }
  const limit = backendMemoryLimitBytes ?? 0;
  return limit > 0
    ? Math.min(DEFAULT_MODEL_CACHE_BYTES, Math.floor(limit / 4))
    : DEFAULT_MODEL_CACHE_BYTES;
}

/** Bytes of a loaded model's weights (float32 variables, or f16/q8 in their store). */
export function modelBytes(loaded: LoadedModel): number {
  return loaded.model.weightBytes();
}

const stamp = async (file: string) => {
  const s = await fs.stat(file).catch(() => null);
  return s ? `${s.mtimeMs}:${s.size}` : '-';
};

export class ModelCache {
  private readonly entries = new Map<string, Entry>();
  /** Loads under way, so two requests for one model load it once. */
  private readonly loading = new Map<string, Promise<Entry>>();
  private clock = 0;
  private loads = 0;
  private hits = 0;
  private evictions = 0;

  constructor(private readonly opts: ModelCacheOptions) {}

  get budgetBytes(): number {
    const b = this.opts.budgetBytes;
    return Math.max(0, typeof b === 'function' ? b() : b);
  }

  get storedBudgetBytes(): number {
    return Math.max(0, this.opts.storedBudgetBytes ?? DEFAULT_STORED_CACHE_BYTES);
  }

  private budget(pool: Pool): number {
    return pool === 'f32' ? this.budgetBytes : this.storedBudgetBytes;
  }

  /** The cache key: the folder and the mtime and size of its weights and config. */
  async keyOf(dir: string): Promise<string> {
    const abs = path.resolve(dir);
    const [weights, config] = await Promise.all([
      stamp(path.join(abs, 'model.safetensors')),
      stamp(path.join(abs, 'config.json')),
    ]);
    return `${abs}\u0000${weights}\u0000${config}\u0000${this.opts.variant?.(abs) ?? ''}`;
  }

  /** A lease on the model in `dir`, loading it unless it is cached with the same files. */
  async acquire(dir: string): Promise<ModelLease> {
    const key = await this.keyOf(dir);
    let entry = this.entries.get(key);
    if (entry && !entry.evicted && isUsable(entry.loaded)) {
      this.hits++;
    } else {
      if (entry) this.evict(entry); // disposed behind the cache's back: load it again
      const pending = this.loading.get(key);
      if (pending) {
        entry = await pending;
        this.hits++;
      } else {
        const p = this.loadEntry(key, dir);
        this.loading.set(key, p);
        try {
          entry = await p;
        } finally {
          this.loading.delete(key);
        }
      }
    }
    // a concurrent acquire of a model over budget may find it evicted already: load it again
    if (entry.evicted && entry.leases === 0) return this.acquire(dir);
    return this.lease(entry);
  }

  private async loadEntry(key: string, dir: string): Promise<Entry> {
    const abs = path.resolve(dir);
    // make room before loading (the peak is what exhausts a backend's memory)
    const size = await expectedBytes(abs);
    this.evictUntil('f32', Math.max(0, this.budgetBytes - size));
    // an older version of this folder (retrained in place) leaves once nobody uses it
    for (const e of [...this.entries.values()]) if (e.dir === abs) this.evict(e);
    let loaded: LoadedModel;
    try {
      loaded = await this.opts.load(dir);
    } catch (err) {
      // stored weights kept for later may be what leaves no room in the kernels' memory
      if (!this.evictIdle('stored')) throw err;
      loaded = await this.opts.load(dir);
    }
    this.loads++;
    const entry: Entry = {
      key,
      dir: abs,
      loaded,
      bytes: modelBytes(loaded),
      pool: loaded.model.store ? 'stored' : 'f32',
      leases: 0,
      lastUsed: ++this.clock,
      evicted: false,
      disposed: false,
    };
    this.entries.set(key, entry);
    return entry;
  }

  private lease(entry: Entry): ModelLease {
    entry.leases++;
    entry.lastUsed = ++this.clock;
    // the newest entry stays (leased); older ones leave until the rest fits the budget
    this.evictUntil(entry.pool, this.budget(entry.pool), entry);
    let released = false;
    return {
      ...entry.loaded,
      release: () => {
        if (released) return;
        released = true;
        entry.leases--;
        if (entry.evicted) this.disposeIfFree(entry);
        else this.evictUntil(entry.pool, this.budget(entry.pool));
      },
    };
  }

  /**
   * Evicts least-recently-used entries of `pool` until its cached bytes are at most `target`.
   * `keep` (the entry being leased) goes last: alone over the budget, it is used once and then
   * disposed.
   */
  private evictUntil(pool: Pool, target: number, keep?: Entry): void {
    const byAge = [...this.entries.values()]
      .filter((e) => e !== keep && e.pool === pool)
      .sort((a, b) => a.lastUsed - b.lastUsed);
    if (keep && !keep.evicted) byAge.push(keep);
    for (const e of byAge) {
      if (this.poolBytes(pool) <= target) return;
      this.evict(e);
    }
  }

  /** Evicts every entry of `pool` nobody is using; whether there was one. */
  private evictIdle(pool: Pool): boolean {
    const idle = [...this.entries.values()].filter((e) => e.pool === pool && e.leases === 0);
    for (const e of idle) this.evict(e);
    return idle.length > 0;
  }

  private poolBytes(pool: Pool): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.pool === pool) n += e.bytes;
    return n;
  }

  private evict(entry: Entry): void {
    if (!entry.evicted) {
      entry.evicted = true;
      this.evictions++;
    }
    if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
    this.disposeIfFree(entry);
  }

  private disposeIfFree(entry: Entry): void {
    if (entry.leases > 0 || entry.disposed) return;
    entry.disposed = true;
    entry.loaded.model.dispose();
  }

  stats(): ModelCacheStats {
    return {
      entries: this.entries.size,
      bytes: this.poolBytes('f32'),
      budgetBytes: this.budgetBytes,
      storedBytes: this.poolBytes('stored'),
      storedBudgetBytes: this.storedBudgetBytes,
      loads: this.loads,
      hits: this.hits,
      evictions: this.evictions,
    };
  }

  /** Empties the cache: free models are disposed now, leased ones when released. */
  clear(): void {
    for (const e of [...this.entries.values()]) this.evict(e);
  }
}

/** The bytes a model folder's weights will take once loaded (float32), from its config.json. */
async function expectedBytes(dir: string): Promise<number> {
  try {
    const { readHfConfig } = await import('../engine/checkpoint/gpt2');
    const { countParams } = await import('../engine/model/params');
    return countParams(await readHfConfig(path.join(dir, 'config.json'))) * 4;
  } catch {
    return 0; // the load itself says what is wrong
  }
}

/** False once the model was disposed (by a caller that should have released it instead). */
function isUsable(loaded: LoadedModel): boolean {
  for (const v of loaded.model.params.values()) return !v.isDisposed;
  return true;
}
