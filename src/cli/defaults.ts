/**
 * The defaults --help shows: the shared ones (src/common/defaults.ts, plain data, so --help and
 * usage errors answer without loading TensorFlow.js), under the names the commands use.
 */
import { DEFAULT_TRAIN, MODEL_PRESETS } from '../common/defaults';

export { DEFAULT_BPE_VOCAB, SAMPLING_DEFAULTS } from '../common/defaults';
export type { PresetName } from '../common/defaults';
export const TRAIN_DEFAULTS = DEFAULT_TRAIN;
export const PRESETS = MODEL_PRESETS;
