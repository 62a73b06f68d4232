/** Refusing a masked-LM (BERT-style) model where only a GPT will do, before its weights are read. */
import * as path from 'node:path';
import { LEFT_TO_RIGHT, isMaskedLm, maskedLmRefusal } from '../model/config';
import { readHfConfig } from './gpt2';

/**
 * Throws when the model folder `dir` holds a masked-LM: it cannot `what` (default: generate or
 * rank continuations). A folder whose config cannot be read is left to the load to report.
 */
export async function refuseMaskedLmDir(dir: string, what: string = LEFT_TO_RIGHT): Promise<void> {
  const config = await readHfConfig(path.join(dir, 'config.json')).catch(() => null);
  if (config && isMaskedLm(config)) {
    throw new Error(maskedLmRefusal(path.basename(path.resolve(dir)), what));
  }
}
