/** Benchmark: train an 8k byte-level BPE on a corpus (default: the 4 MB Austen sample). */
import { statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readCorpusChunks, trainTokenizer } from '../src/engine/tokenizer/index';

export interface BpeTrainBench {
  name: 'bpe-train';
  charsPerSecond: number;
  seconds: number;
  vocabSize: number;
  peakRssMB: number;
}

export const DEFAULT_CORPUS = fileURLToPath(
  new URL('../resources/samples/austen.txt', import.meta.url),
);

export async function benchBpeTrain(corpusPath: string, vocabSize = 8000): Promise<BpeTrainBench> {
  if (!statSync(corpusPath).isFile()) throw new Error(`Not a file: ${corpusPath}`);
  let chars = 0;
  const source = readCorpusChunks([corpusPath]);
  const corpus = (async function* () {
    for await (const chunk of source) {
      chars += chunk.length;
      yield chunk;
    }
  })();
  const start = performance.now();
  const tok = await trainTokenizer({ kind: 'bpe', vocabSize, corpus });
  const seconds = (performance.now() - start) / 1000;
  return {
    name: 'bpe-train',
    charsPerSecond: Math.round(chars / seconds),
    seconds: Math.round(seconds * 1000) / 1000,
    vocabSize: tok.vocabSize,
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [corpus = DEFAULT_CORPUS, size] = process.argv.slice(2);
  console.log(
    JSON.stringify(await benchBpeTrain(corpus, size === undefined ? 8000 : Number(size))),
  );
}
