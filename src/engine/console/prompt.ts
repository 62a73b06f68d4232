/**
 * Prompts for a pretrained model, GPT-2/GPT-3 style: free text (completion), a task template with
 * `{input}` (zero-shot), or K worked demonstrations in a format such as `{input} -> {output}`
 * followed by the query (few-shot).
 *
 *   prompt = [instruction + sep] + demo_1 + sep + … + demo_K + sep + query
 *   query  = format up to `{output}`, with `{input}` filled in (trailing spaces moved to the answer)
 *
 * Everything is counted with the model's own tokenizer. The prompt's budget is the context minus
 * the tokens kept free for the answer (at most half the context). When the demonstrations do not
 * fit, the oldest are dropped first.
 */
import { unicodeToBytes } from '../tokenizer/bytes';
import type { Tokenizer } from '../tokenizer/types';

export type PromptMode = 'completion' | 'zero-shot' | 'few-shot';

export interface Demo {
  input: string;
  output: string;
}

export interface PromptSpec {
  mode: PromptMode;
  /** The prompt itself (completion), or the input filled into the template. */
  text: string;
  /** Zero-shot: the task template with `{input}`. Few-shot: an optional task description. */
  instruction?: string;
  /** Few-shot: how one demonstration is written, with `{input}` and `{output}`. */
  format?: string;
  demos?: Demo[];
  /** Between demonstrations (and before the query). */
  separator?: string;
}

export interface PromptPart {
  kind: 'instruction' | 'demo' | 'query';
  text: string;
  tokens: number;
}

export interface AssembledPrompt {
  prompt: string;
  /** Its token ids under the model's tokenizer. */
  ids: number[];
  /** The model's context (blockSize) and what of it the prompt may use. */
  context: number;
  budget: number;
  /** Demonstrations kept, and how many of the oldest were dropped to fit. */
  demosUsed: number;
  dropped: number;
  /** The prompt is longer than its budget even without demonstrations. */
  overflow: boolean;
  parts: PromptPart[];
  /** Characters the tokenizer cannot encode (a character-level model's unseen ones), left out. */
  unknown: string[];
}

export const DEFAULT_FORMAT = '{input} => {output}';
export const DEFAULT_SEPARATOR = '\n';

/** Replaces `{input}` and `{output}` (only those; other braces stay). */
export function fillTemplate(
  template: string,
  values: { input?: string; output?: string },
): string {
  return template.replace(/\{(input|output)\}/g, (m, key: 'input' | 'output') => values[key] ?? m);
}

/**
 * A format's query half: the format up to `{output}`, filled, its trailing spaces split off. The
 * answer is scored (or written) after `context`, starting with `answerPrefix` — so " great" is one
 * BPE token with its space, as GPT-2 wrote it.
 */
export function splitQuery(
  format: string,
  input: string,
): { context: string; answerPrefix: string } {
  const at = format.indexOf('{output}');
  const head = fillTemplate(at >= 0 ? format.slice(0, at) : format, { input });
  const trimmed = head.replace(/[ \t]+$/, '');
  return { context: trimmed, answerPrefix: head.slice(trimmed.length) };
}

/** Checks a template names its fields; the message names the field at fault. */
export function checkTemplate(template: string, field: string, needs: Array<'input' | 'output'>) {
  for (const n of needs) {
    if (!template.includes(`{${n}}`)) throw new Error(`${field}: the template needs {${n}}`);
  }
}

/**
 * Encodes text, leaving out what the tokenizer cannot encode (a character-level vocabulary has
 * only the characters of its training text); `text` is what was kept, `unknown` what was not.
 */
export function encodeLenient(
  tokenizer: Tokenizer,
  text: string,
): { ids: number[]; text: string; unknown: string[] } {
  try {
    return { ids: tokenizer.encode(text), text, unknown: [] };
  } catch {
    const unknown = new Set<string>();
    let kept = '';
    for (const ch of text) {
      try {
        tokenizer.encode(ch);
        kept += ch;
      } catch {
        unknown.add(ch);
      }
    }
    return { ids: tokenizer.encode(kept), text: kept, unknown: [...unknown] };
  }
}

/** The prompt's share of the context: blockSize minus the answer's room (at most half of it). */
export function promptBudget(blockSize: number, reserve: number): number {
  return blockSize - Math.min(Math.max(0, reserve), Math.floor(blockSize / 2));
}

function partsOf(spec: PromptSpec, demos: Demo[]): Array<Omit<PromptPart, 'tokens'>> {
  if (spec.mode === 'completion') return [{ kind: 'query', text: spec.text }];
  if (spec.mode === 'zero-shot') {
    return [
      { kind: 'query', text: fillTemplate(spec.instruction ?? '{input}', { input: spec.text }) },
    ];
  }
  const format = spec.format ?? DEFAULT_FORMAT;
  const sep = spec.separator ?? DEFAULT_SEPARATOR;
  const parts: Array<Omit<PromptPart, 'tokens'>> = [];
  if (spec.instruction?.trim()) parts.push({ kind: 'instruction', text: spec.instruction + sep });
  for (const d of demos) parts.push({ kind: 'demo', text: fillTemplate(format, d) + sep });
  parts.push({ kind: 'query', text: splitQuery(format, spec.text).context });
  return parts;
}

/**
 * Assembles a prompt and fits it to the model's context, dropping the oldest demonstrations first.
 * `reserve`: tokens kept free for the answer (e.g. max new tokens, or the longest label word).
 */
export function assemblePrompt(
  tokenizer: Tokenizer,
  blockSize: number,
  spec: PromptSpec,
  reserve = 0,
): AssembledPrompt {
  if (spec.mode === 'zero-shot' && spec.instruction !== undefined) {
    checkTemplate(spec.instruction, 'template', ['input']);
  }
  if (spec.mode === 'few-shot') {
    checkTemplate(spec.format ?? DEFAULT_FORMAT, 'format', ['input', 'output']);
  }
  const budget = promptBudget(blockSize, reserve);
  const all = spec.mode === 'few-shot' ? (spec.demos ?? []) : [];
  const encode = (demos: Demo[]) =>
    encodeLenient(
      tokenizer,
      partsOf(spec, demos)
        .map((p) => p.text)
        .join(''),
    );
  // the fewest oldest demonstrations to drop: a binary search over how many to keep
  let keep = all.length;
  let encoded = encode(all);
  if (encoded.ids.length > budget && all.length > 0) {
    let lo = 0; // keeping `lo` is known to fit, or lo = 0
    let hi = all.length; // keeping `hi` does not fit
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (encode(all.slice(all.length - mid)).ids.length <= budget) lo = mid;
      else hi = mid;
    }
    keep = lo;
    encoded = encode(all.slice(all.length - keep));
  }
  const demos = all.slice(all.length - keep);
  const parts = partsOf(spec, demos).map((p) => {
    const e = encodeLenient(tokenizer, p.text);
    return { kind: p.kind, text: e.text, tokens: e.ids.length };
  });
  return {
    prompt: encoded.text,
    ids: encoded.ids,
    context: blockSize,
    budget,
    demosUsed: keep,
    dropped: all.length - keep,
    overflow: encoded.ids.length > budget,
    parts,
    unknown: encoded.unknown,
  };
}

/**
 * One token's text for display. A byte-level BPE token can be part of a UTF-8 character (an
 * emoji, CJK): its bytes are shown as hex, <F0 9F>, rather than a replacement character.
 */
export function tokenPiece(tokenizer: Tokenizer, id: number): string {
  if (id < 0 || id >= tokenizer.vocabSize) return '';
  const text = tokenizer.decode([id]);
  if (!text.includes('\uFFFD') || tokenizer.kind !== 'bpe') return text;
  const bytes = unicodeToBytes(tokenizer.idToToken(id) ?? '');
  if (!bytes) return text;
  return `<${Array.from(bytes, (b) => b.toString(16).toUpperCase().padStart(2, '0')).join(' ')}>`;
}
