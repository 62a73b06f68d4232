/** One backend's init result: the attempt to report, and what the selected backend offers. */
import type { AttemptStatus, BackendAttempt, BackendName, BackendReport } from './types';
import { clip, firstLine } from './format';

/** What the selected backend offers: the report's own fields, and a few words for the summary. */
export type SelectedInfo = Pick<
  BackendReport,
  'threads' | 'simd' | 'memoryLimitBytes' | 'maxTensorBytes' | 'device' | 'notes'
> & {
  /** For the summary, e.g. "SIMD, 1 thread". */
  features: string;
};

export interface Outcome {
  attempt: BackendAttempt;
  /** A few words for the summary line. */
  short: string;
  info?: SelectedInfo;
}

export function selected(name: BackendName, detail: string, info: SelectedInfo): Outcome {
  return { attempt: { name, status: 'selected', detail }, short: 'selected', info };
}

export function notSelected(
  name: BackendName,
  status: Exclude<AttemptStatus, 'selected'>,
  detail: string,
  short?: string,
): Outcome {
  const words =
    short ??
    (status === 'not-installed'
      ? 'not installed'
      : status === 'failed'
        ? `failed (${firstLine(detail, 80)})`
        : status);
  return { attempt: { name, status, detail: clip(detail, 600) }, short: words };
}
