/** Short wordings for attempt details and report notes. */

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (err && typeof err === 'object' && 'message' in err) return String(err.message);
  return String(err);
}

export function firstLine(s: string, max: number): string {
  const line = s.split('\n')[0] ?? '';
  return line.length > max ? line.slice(0, max - 1) + '…' : line;
}

export function clip(s: string, max: number): string {
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
