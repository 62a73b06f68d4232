/**
 * The escapes a prompt field understands, the same in the console and the CLI: `\n` a new line,
 * `\t` a tab, `\\` a backslash. Any other backslash stays as typed. Pure.
 */

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', '\\': '\\' };

/** `Review: {input}\nLabel:` (typed backslash, n) → the same text with a real new line. */
export function unescapeField(text: string): string {
  return text.replace(/\\([nt\\])/g, (_m, c: string) => ESCAPES[c]!);
}

/** The inverse for showing a value in a one-line field: unescapeField(escapeField(s)) === s. */
export function escapeField(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\t/g, '\\t');
}
