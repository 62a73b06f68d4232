/**
 * The defaults --help shows: the shared ones (src/common/defaults.ts, plain data, so --help and
 * usage errors answer without loading TensorFlow.js) and the CLI's own.
 */
import { DEFAULT_TRAIN, MODEL_PRESETS, SAMPLING_DEFAULTS } from '../common/defaults';

export { SAMPLING_DEFAULTS };
export type { PresetName } from '../common/defaults';
export const TRAIN_DEFAULTS = DEFAULT_TRAIN;
export const PRESETS = MODEL_PRESETS;

/** BPE vocabulary size when --tokenizer bpe / --type bpe is given without --vocab-size. */
export const DEFAULT_BPE_VOCAB = 2048;
