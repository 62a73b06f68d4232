/** What a model configuration costs, checked before anything is allocated. */
import os from 'node:os';
import type { GPTConfig } from '../model/config';
import { countParams } from '../model/params';

/** How much tensor memory there is to hold a model's weights, and who holds it. */
export interface MemoryBudget {
  bytes: number;
  /** Who holds it, for messages: "the wasm backend", "this machine's memory". */
  holder: string;
}

/** The machine's RAM: the budget when no backend says otherwise (a host copy needs it anyway). */
export function machineMemoryBudget(): MemoryBudget {
  return { bytes: os.totalmem(), holder: "this machine's memory" };
}

/** Bytes in the units a person reads: "4 GiB", "28 PB" (decimal beyond TiB, since they're huge). */
export function formatSize(n: number): string {
  if (n >= 2 ** 50) {
    const units = ['PB', 'EB', 'ZB', 'YB'];
    let v = n / 1e15;
    let i = 0;
    while (v >= 1000 && i < units.length - 1) {
      v /= 1000;
      i++;
    }
    return v >= 1e3 ? `${v.toExponential(1)} ${units[i]}` : `${round(v)} ${units[i]}`;
  }
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${round(v)} ${units[i]}`;
}

const round = (v: number) =>
  v >= 10 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1);

/**
 * Upper bounds no GPT-2 this engine can run comes near (GPT-2 XL: 48 layers, 25 heads, 1600 wide,
 * 1024 positions, 50257 tokens); past them a config is a typo or an attack.
 */
export const CONFIG_BOUNDS = {
  n_layer: 1024,
  n_head: 1024,
  n_embd: 65_536,
  n_positions: 1_048_576,
  vocab_size: 16_777_216,
} as const;

/** GPT-2 XL's sizes: a yardstick for which field made a config too big. */
const YARDSTICK = { n_layer: 48, n_embd: 1600, n_positions: 1024, vocab_size: 50257 };

/** Bytes per weight at the smallest inference format, q8_0 (32 int8 and one f16 scale). */
const Q8_BYTES_PER_WEIGHT = 34 / 32;

/**
 * Refuses a configuration whose weights alone would not fit `budget` (the backend's memory) even
 * as q8, the smallest inference format (../weights/format.ts chooses among f32, f16 and q8 once
 * the model's size is known to be sane), naming the field that makes it so, then one past
 * CONFIG_BOUNDS. Nothing is allocated: the sizes come from countParams. Returns a message, or
 * undefined when the config is fine.
 */
export function configSizeProblem(
  cfg: Pick<GPTConfig, 'vocabSize' | 'blockSize' | 'nLayer' | 'nHead' | 'nEmbd'>,
  b: MemoryBudget = machineMemoryBudget(),
): string | undefined {
  const { vocabSize: V, blockSize: T, nLayer: L, nHead: H, nEmbd: C } = cfg;
  const fields = { n_layer: L, n_head: H, n_embd: C, n_positions: T, vocab_size: V };
  const params = countParams(cfg);
  const bytes = params * 4;
  if (params * Q8_BYTES_PER_WEIGHT > b.bytes) {
    // the biggest term, then its field that is furthest past GPT-2 XL
    const terms: Array<[number, Array<keyof typeof YARDSTICK>]> = [
      [V * C, ['vocab_size', 'n_embd']],
      [T * C, ['n_positions', 'n_embd']],
      [L * (12 * C * C + 13 * C), ['n_layer', 'n_embd']],
    ];
    terms.sort((x, y) => y[0] - x[0]);
    const [field] = [...terms[0]![1]].sort(
      (x, y) => fields[y] / YARDSTICK[y] - fields[x] / YARDSTICK[x],
    );
    const count = params >= 1e6 ? params.toExponential(1).replace('e+', 'e') : String(params);
    return (
      `${field} ${fields[field!]} gives ${count} parameters (${formatSize(bytes)} of float32, ` +
      `${formatSize(params * Q8_BYTES_PER_WEIGHT)} even as q8); ` +
      `${b.holder} can hold at most ${formatSize(b.bytes)}`
    );
  }
  for (const [field, max] of Object.entries(CONFIG_BOUNDS)) {
    const v = fields[field as keyof typeof fields];
    if (v > max) return `${field} ${v} is larger than the ${max} this engine supports`;
  }
  return undefined;
}
