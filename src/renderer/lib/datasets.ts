/** Number formatting for the data and pretrain pages (bytes: common/format.ts's formatBytes). */

/** 1234 → "1.23k", 4.2e6 → "4.2M". */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '—';
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (abs >= 1e6) return `${(n / 1e6).toFixed(abs >= 1e7 ? 1 : 2)}M`;
  if (abs >= 1e3) return `${(n / 1e3).toFixed(abs >= 1e4 ? 1 : 2)}k`;
  return String(Math.round(n));
}

/** Milliseconds → "1:02:03" or "2:03". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

export function formatLoss(x: number | null | undefined): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(3);
}

/** Accepted by the file picker and the drop zone. */
export const ACCEPT = '.txt,.md,.jsonl,.ndjson,.csv,.tsv,.json';
export const TABLE_EXTENSIONS = ['.jsonl', '.ndjson', '.csv', '.tsv', '.json'];

export function extension(name: string): string {
  const i = name.lastIndexOf('.');
  return i >= 0 ? name.slice(i).toLowerCase() : '';
}
