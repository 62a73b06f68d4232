/**
 * Pieces several commands share: the model option and loading, tokenizer loading, text input,
 * running a checkpoint operation.
 */
import { promises as fs } from 'node:fs';
import type { CheckpointProgress } from '../../engine/checkpoint/export';
import { WEIGHTS_CHOICES, type WeightsChoice, type WeightsInfo } from '../../common/console';
import { formatBytes } from '../../common/format';
import type { LoadedModel } from '../../engine/checkpoint/modelDir';
import type { Tokenizer } from '../../engine/tokenizer';
import { errorMessage, type Output } from '../output';
import type { OptionSpec } from '../args';
import { EXIT, onInterrupt } from '../runtime';

export const MODEL_OPTION: OptionSpec = {
  name: 'model',
  kind: 'string',
  value: 'DIR',
  required: true,
  description: 'model folder: a run directory or a Hugging Face GPT-2 folder (model.safetensors)',
};

export const WEIGHTS_OPTION: OptionSpec = {
  name: 'weights',
  kind: 'choice',
  choices: WEIGHTS_CHOICES,
  default: 'auto',
  description:
    "how to hold the weights: f32, f16 or q8 (llama.cpp's q8_0: int8 in blocks of 32 with a " +
    "scale each), or auto: the widest that fits the backend's memory with the KV cache",
};

/**
 * Loads a model folder, saying plainly when the folder itself is missing. With `weights` (an
 * inference load) the weights are held as asked, refused up front when they cannot fit.
 */
export async function loadModel(dir: string, weights?: WeightsChoice): Promise<LoadedModel> {
  const stat = await fs.stat(dir).catch(() => undefined);
  if (stat === undefined) throw new Error(`model folder not found: ${dir}`);
  if (!stat.isDirectory()) throw new Error(`not a folder: ${dir} (--model wants a model folder)`);
  const { loadModelDir } = await import('../../engine/checkpoint/modelDir');
  return loadModelDir(dir, weights ? { weights } : {});
}

/**
 * "weights: q8 (1.66 GiB); vs f32 on the reference text: mean |Δlogp| 0.0041, max 0.052".
 */
export function describeWeights(w: WeightsInfo): string {
  const head = `weights: ${w.format} (${formatBytes(w.bytes)})`;
  const n = w.numerics;
  if (!n) return head;
  const on = n.text ? 'the reference text' : `a fixed sequence of ${n.tokens + 1} tokens`;
  const d = (x: number) => (x === 0 ? '0' : x.toPrecision(2));
  return `${head}; vs ${n.reference} on ${on}: mean |Δlogp| ${d(n.meanAbsDiff)}, max ${d(n.maxAbsDiff)}`;
}

/** Encodes text from an option, naming the option when the tokenizer cannot encode it. */
export function encodeOption(tokenizer: Tokenizer, text: string, flag: string): number[] {
  try {
    return tokenizer.encode(text);
  } catch (err) {
    throw new Error(`${flag}: ${errorMessage(err)}`);
  }
}

/** Reads a UTF-8 text file whole ('-' reads stdin), with errors that name the file. */
export async function readTextFile(file: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = file === '-' ? await readStdin() : await fs.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`file not found: ${file}`);
    if (code === 'EISDIR') throw new Error(`${file} is a folder, not a file`);
    throw new Error(`cannot read ${file}: ${errorMessage(err)}`);
  }
  const name = file === '-' ? 'standard input' : file;
  if (bytes.includes(0))
    throw new Error(`${name} looks binary (it contains NUL bytes); expected UTF-8 text`);
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new Error(`${name} is not UTF-8 text`);
  }
}

async function readStdin(): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  for await (const chunk of process.stdin) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** What a checkpoint operation (import, export) is handed: the Ctrl-C signal and a progress sink. */
export interface CheckpointRun {
  signal: AbortSignal;
  onProgress: (p: CheckpointProgress) => void;
}

/**
 * Runs a checkpoint operation under Ctrl-C: progress as status lines (or events with --json),
 * then the result as the last JSON line, or `report` prints it for people.
 */
export async function runCheckpointOperation<R extends object>(
  out: Output,
  operation: 'import' | 'export',
  work: (run: CheckpointRun) => Promise<R>,
  report: (r: R) => void,
): Promise<number> {
  const interrupt = onInterrupt(out, 'stopping; nothing is left half-written');
  try {
    const r = await work({
      signal: interrupt.signal,
      onProgress: (p) =>
        out.json
          ? out.emit({ type: 'checkpoints.progress', ...p })
          : out.status(`${p.phase}: ${p.message}`),
    });
    if (out.json) out.emit({ type: 'checkpoints.result', operation, ...r });
    else report(r);
    return EXIT.ok;
  } finally {
    interrupt.dispose();
  }
}
