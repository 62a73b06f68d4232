/** The tokenizer contract every part of the engine relies on. */

export type TokenizerKind = 'char' | 'bpe';

/** GPT-2's end-of-text marker and GPT-1's fine-tuning markers. */
export const END_OF_TEXT = '<|endoftext|>';
export const START_TOKEN = '<|start|>';
export const DELIMITER_TOKEN = '<|delim|>';
export const EXTRACT_TOKEN = '<|extract|>';
/** BERT's mask token, added to a masked-LM's vocabulary. */
export const MASK_TOKEN = '[MASK]';

export interface TrainProgress {
  phase: 'count' | 'merge';
  /** 0..1 */
  fraction: number;
  message: string;
}

/** Turns a stream of token ids into text, holding back incomplete UTF-8 sequences. */
export interface StreamDecoder {
  /** Returns the newly completed text (may be ''). */
  push(id: number): string;
  /** Returns whatever is left, with U+FFFD for bytes that never completed. */
  flush(): string;
}

export interface Tokenizer {
  readonly kind: TokenizerKind;
  /** Number of ids, special tokens included. */
  readonly vocabSize: number;
  /** Special token string → id. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** The end-of-text id, when the tokenizer has one. */
  readonly eosId: number | undefined;
  /** Encodes plain text. Special-token strings inside `text` are treated as ordinary text. */
  encode(text: string): number[];
  /** Decodes ids; special tokens decode to their strings. */
  decode(ids: readonly number[]): string;
  /** Streaming decoder for generation. */
  streamDecoder(): StreamDecoder;
  /** The raw token string (byte-level form for BPE), for display. */
  idToToken(id: number): string | undefined;
  /** Adds special tokens (idempotent) at the end of the vocabulary; returns their ids. */
  addSpecialTokens(tokens: readonly string[]): number[];
  /** Writes tokenizer.json (+ vocab.json and merges.txt for BPE) into dir, atomically per file. */
  save(dir: string): Promise<void>;
}
