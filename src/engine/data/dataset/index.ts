/**
 * The dataset library: a corpus imported once into workspace/datasets/<id>/ as normalized UTF-8
 * text shards (LF line ends, one record per line for tables) plus manifest.json with the source
 * files, their hashes and the text's statistics. Files of any size are streamed: never read whole.
 * The sha256 of the normalized text identifies a dataset, so importing the same content again
 * finds the existing one.
 */
export { expandImportPaths, IMPORT_EXTENSIONS } from './paths';
export { inspectFile, suggestField } from './inspect';
export { TextStats } from './stats';
export { SHARD_BYTES } from './shards';
export {
  importDataset,
  slug,
  type ImportOptions,
  type ImportProgress,
  type ImportResult,
} from './import';
export { datasetShards, listDatasets, readManifest, readTextAt } from './library';
