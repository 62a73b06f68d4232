/** Text helpers shared by every side: sample display, file names the user sees. Pure. */

/**
 * Two or more blank lines in a row (lines of spaces only count as blank) become one, so a sample
 * of an undertrained model (Chinese poetry: mostly line breaks) does not fill the screen. Line
 * ends are kept as they are; text without such runs comes back unchanged.
 */
export function collapseBlankLines(text: string): string {
  return text.replace(/(\r?\n)[ \t\u3000]*\r?\n(?:[ \t\u3000]*\r?\n)+/g, '$1$1');
}

const RESERVED = /^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$/i;

/**
 * A user's file name made safe to keep on any disk: no folders, control or reserved characters,
 * no leading dots or trailing dots and spaces, at most 200 characters (the extension kept);
 * `fallback` when nothing is left.
 */
export function safeFileName(name: string, fallback = 'file'): string {
  let s = name
    .normalize('NFC')
    .replace(/[\u0000-\u001f\u007f<>:"/\\|?*]+/g, '_')
    .replace(/^[.\s]+/, '')
    .replace(/[.\s]+$/, '');
  if (RESERVED.test(s)) s = `_${s}`;
  if (s.length > 200) {
    const dot = s.lastIndexOf('.');
    const ext = dot > 0 && s.length - dot <= 16 ? s.slice(dot) : '';
    s = s.slice(0, 200 - ext.length) + ext;
  }
  return s || fallback;
}

/** `name` if no file in `taken` has it (case-insensitively), else "name (2).ext", "name (3).ext"… */
export function uniqueFileName(name: string, taken: Iterable<string>): string {
  const used = new Set([...taken].map((t) => t.toLowerCase()));
  if (!used.has(name.toLowerCase())) return name;
  const dot = name.lastIndexOf('.');
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ''];
  for (let i = 2; ; i++) {
    const candidate = `${stem} (${i})${ext}`;
    if (!used.has(candidate.toLowerCase())) return candidate;
  }
}
