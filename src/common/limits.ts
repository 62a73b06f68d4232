/**
 * The documented size limits of requests (docs/security.md). The schemas enforce them at every
 * process boundary, and the renderer's inputs check them before sending, so a caller past one
 * gets a clear error naming the field and the limit instead of a host busy for minutes.
 */
import { z } from 'zod';

export const LIMITS = {
  /** One WebSocket message (browser mode); a larger one closes that connection only (1009). */
  messageBytes: 16 * 2 ** 20,
  /** A prompt, a context, an instruction or a demonstration. */
  promptChars: 100_000,
  /** A text (or prompt plus continuation) to score. */
  scoreChars: 1_000_000,
  /** One candidate answer, label word, classification input field. */
  itemChars: 20_000,
  /** A path in a request. */
  pathChars: 4096,
  /** Column names, separators, formats, stop strings, display names. */
  shortChars: 1000,
} as const;

const chars = (n: number) => n.toLocaleString('en-US');

/** A string of at most `max` characters, with a message that says the limit. */
export function capped(max: number, what: string) {
  return z.string().max(max, `${what} is at most ${chars(max)} characters`);
}

export const pathString = capped(LIMITS.pathChars, 'a path').min(1);
export const promptString = capped(LIMITS.promptChars, 'a prompt');
export const scoreString = capped(LIMITS.scoreChars, 'a text to score');
export const itemString = capped(LIMITS.itemChars, 'an item');
export const shortString = capped(LIMITS.shortChars, 'this field');

/** For the renderer: null when `text` fits, else what to say ("12,345 characters over the …"). */
export function overLimit(text: string, max: number): { over: number; max: number } | null {
  return text.length > max ? { over: text.length - max, max } : null;
}
