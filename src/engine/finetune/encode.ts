/** Examples → the token sequences the model reads, leaving out (and naming) those that cannot be encoded. */
import type { RowProblemInfo } from '../../common/finetune';
import type { Tokenizer } from '../tokenizer/types';
import type { Example } from './data';
import { encodeExample, type SpecialIds, type Task } from './tasks';

/** An example and its sequences (1, 2 or N, each ending in [e]). */
export interface Encoded {
  example: Example;
  sequences: number[][];
}

export function encodeAll(
  examples: readonly Example[],
  task: Task,
  tokenizer: Tokenizer,
  sp: SpecialIds,
  blockSize: number,
): { encoded: Encoded[]; truncated: number; problems: RowProblemInfo[] } {
  let truncated = 0;
  const encoded: Encoded[] = [];
  const problems: RowProblemInfo[] = [];
  for (const example of examples) {
    try {
      const e = encodeExample(task, example.input, tokenizer, sp, blockSize);
      if (e.truncated) truncated++;
      encoded.push({ example, sequences: e.sequences });
    } catch (err) {
      // e.g. a character a char-level tokenizer never saw: the row is skipped, not the fine-tune
      problems.push({ row: example.row, message: `row ${example.row}: ${(err as Error).message}` });
    }
  }
  return { encoded, truncated, problems };
}
