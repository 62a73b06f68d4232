/** The engine's tokenizers: load, train, and stream a corpus. */
import { BpeTokenizer } from './bpe';
import { trainBpe } from './bpe-train';
import { CharTokenizer } from './char';
import { readTokenizerDir, type TokenizerData } from './hf';
import type { TrainOptions } from './progress';
import type { TokenizerKind } from './types';

export * from './types';
export { BpeTokenizer } from './bpe';
export { CharTokenizer } from './char';
export { readCorpusChunks, type CorpusChunks } from './corpus';
export type { SaveOptions, TokenizerData } from './hf';
export type { TrainOptions } from './progress';

/** 256 byte tokens + at least one merge + <|endoftext|>. */
export const MIN_BPE_VOCAB_SIZE = 258;

export function tokenizerFromData(data: TokenizerData): BpeTokenizer | CharTokenizer {
  return data.kind === 'bpe'
    ? new BpeTokenizer(data.tokens, data.merges, data.specials)
    : new CharTokenizer(data.tokens, data.specials);
}

/** Reads tokenizer.json if present, else a GPT-2 folder's vocab.json + merges.txt. */
export async function loadTokenizer(dir: string): Promise<BpeTokenizer | CharTokenizer> {
  const { data, file } = await readTokenizerDir(dir);
  try {
    return tokenizerFromData(data);
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
}

export interface TrainTokenizerOptions extends TrainOptions {
  kind: TokenizerKind;
  /** Total vocabulary size, special tokens included; required for 'bpe'. */
  vocabSize?: number;
  corpus: AsyncIterable<string>;
}

/**
 * Trains a tokenizer. For BPE the result has exactly `vocabSize` ids unless the corpus runs out
 * of pairs to merge first (a tiny corpus), in which case it has fewer.
 */
export async function trainTokenizer(
  opts: TrainTokenizerOptions,
): Promise<BpeTokenizer | CharTokenizer> {
  const { kind, vocabSize, corpus } = opts;
  opts.signal?.throwIfAborted();
  if (kind === 'char') return CharTokenizer.train(corpus, opts);
  if (kind !== 'bpe') throw new Error(`Unknown tokenizer kind: ${String(kind)}`);
  if (vocabSize === undefined || !Number.isInteger(vocabSize) || vocabSize < MIN_BPE_VOCAB_SIZE) {
    throw new Error(
      `A BPE tokenizer needs an integer vocabSize of at least ${MIN_BPE_VOCAB_SIZE} ` +
        `(256 byte tokens + at least one merge + <|endoftext|>); got ${String(vocabSize)}`,
    );
  }
  return trainBpe(corpus, vocabSize, opts);
}
