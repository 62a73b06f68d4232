/**
 * The dataset library's table files, as the fine-tune wizard and the console offer them: by the
 * names the user knows (the dataset's, the file's), never by the engine's path to the copy.
 */
import type { LibraryTable } from '../../common/datasets';
import { api } from './state.svelte';

export type { LibraryTable };

export function libraryTables(): Promise<LibraryTable[]> {
  return api.invoke('datasets.tables', {});
}

/** "reviews.csv", or "Movie reviews (reviews.csv)" when the dataset was named otherwise. */
export function tableLabel(t: LibraryTable): string {
  const stem = t.name.replace(/\.[^.]+$/, '');
  return t.datasetName === stem || t.datasetName === t.name
    ? t.name
    : `${t.datasetName} (${t.name})`;
}

/** A path's last part: what is shown of a file that is not in the library. */
export const fileName = (p: string): string => p.split(/[\\/]/).pop() || p;
