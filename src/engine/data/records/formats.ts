/** Which format a data file is in, by its extension. */
import * as path from 'node:path';

export type TableFormat = 'jsonl' | 'csv' | 'tsv' | 'json';
export type DataFormat = TableFormat | 'text';

const EXTENSIONS: Record<string, DataFormat> = {
  '.txt': 'text',
  '.md': 'text',
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.csv': 'csv',
  '.tsv': 'tsv',
  '.json': 'json',
};

export function formatOf(file: string): DataFormat {
  const ext = path.extname(file).toLowerCase();
  const format = EXTENSIONS[ext];
  if (!format) {
    throw new Error(
      `${file}: unsupported file type "${ext || '(none)'}" (use .txt, .md, .jsonl, .csv, .tsv or .json)`,
    );
  }
  return format;
}
