/** The header: its length prefix, its JSON, and the strict checks on every tensor entry. */
import { ELEMENT_SIZE, isDType, numel, type DType } from './dtypes';
import { CheckpointError, MAX_HEADER_SIZE, METADATA_KEY, type DecodeOptions } from './types';

export function checkShape(shape: unknown, file: string, name: string): asserts shape is number[] {
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0) ||
    !Number.isSafeInteger(numel(shape))
  ) {
    throw new CheckpointError(
      `tensor '${name}' has invalid shape ${JSON.stringify(shape)}: dimensions must be non-negative integers`,
      file,
      name,
    );
  }
}

export interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

function parseEntry(name: string, info: unknown, file: string): Entry {
  if (typeof info !== 'object' || info === null || Array.isArray(info)) {
    throw new CheckpointError(`tensor '${name}': header entry is not an object`, file, name);
  }
  const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
  if (typeof dtype !== 'string' || !isDType(dtype)) {
    throw new CheckpointError(
      `tensor '${name}' has unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(ELEMENT_SIZE).join(', ')})`,
      file,
      name,
    );
  }
  checkShape(shape, file, name);
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw new CheckpointError(
      `tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}: expected [begin, end] with 0 <= begin <= end`,
      file,
      name,
    );
  }
  const [begin, end] = offsets as [number, number];
  const need = numel(shape) * ELEMENT_SIZE[dtype];
  if (end - begin !== need) {
    throw new CheckpointError(
      `tensor '${name}': data_offsets [${begin}, ${end}] span ${end - begin} bytes, but shape [${shape.join(', ')}] of ${dtype} needs ${need}`,
      file,
      name,
    );
  }
  return { name, dtype, shape, begin, end };
}

function parseMetadata(value: unknown, file: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CheckpointError(`${METADATA_KEY} must be an object of strings`, file);
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      throw new CheckpointError(`${METADATA_KEY} field '${k}' must be a string`, file);
    }
  }
  return { ...(value as Record<string, string>) };
}

/**
 * The header length from the first 8 bytes, checked against the file's size and the cap before
 * anything of that length is allocated or read.
 */
export function headerLength(prefix: Uint8Array, fileSize: number, file: string): number {
  const fail = (detail: string) => new CheckpointError(detail, file);
  if (fileSize < 8) {
    throw fail(`file is ${fileSize} bytes, too short to be a safetensors file`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(fileSize - 8)) {
    const where =
      n > BigInt(fileSize)
        ? `is larger than the file (${fileSize} bytes)`
        : `does not fit in the file (${fileSize} bytes, 8 of them the length itself)`;
    throw fail(
      `header length ${n} ${where} and runs past its end: ` +
        'the file is truncated or not a safetensors file',
    );
  }
  const headerLen = Number(n);
  if (headerLen > MAX_HEADER_SIZE) {
    throw fail(`header length ${headerLen} exceeds the ${MAX_HEADER_SIZE}-byte limit`);
  }
  return headerLen;
}

export interface Layout {
  metadata: Record<string, string>;
  /** In header order. */
  entries: Entry[];
}

export function inspectLayout(layout: Layout, opts: DecodeOptions): void {
  opts.inspect?.(
    new Map(layout.entries.map((e) => [e.name, { dtype: e.dtype, shape: e.shape }])),
    layout.metadata,
  );
}

/**
 * Parses the JSON header and checks every tensor against the data section (`dataLen` bytes):
 * dtype, shape (non-negative safe integers), data_offsets (within the data section, byte count =
 * ∏shape × dtype size, no overlaps, no gaps, nothing left over). Nothing is allocated from it.
 */
export function parseHeader(headerBytes: Uint8Array, dataLen: number, file: string): Layout {
  const fail = (detail: string, tensor?: string) => new CheckpointError(detail, file, tensor);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (err) {
    throw fail(`header is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw fail(`header is not a JSON object`);
  }

  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(header as object)) {
    if (name === METADATA_KEY) metadata = parseMetadata(info, file);
    else entries.push(parseEntry(name, info, file));
  }

  for (const e of entries) {
    if (e.end > dataLen) {
      throw fail(
        `tensor '${e.name}' needs bytes up to ${e.end} of the data section, but only ${dataLen} are ` +
          `present (its data_offsets [${e.begin}, ${e.end}] run past the data section of ` +
          `${dataLen} bytes): the file is truncated`,
        e.name,
      );
    }
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let prev: Entry | undefined;
  for (const e of sorted) {
    if (e.begin < expected) {
      throw fail(
        `tensor '${e.name}' (data_offsets [${e.begin}, ${e.end}]) overlaps tensor '${prev?.name}' (ends at ${expected})`,
        e.name,
      );
    }
    if (e.begin > expected) {
      throw fail(
        `tensor '${e.name}' starts at ${e.begin}, leaving a gap of ${e.begin - expected} unused bytes before it`,
        e.name,
      );
    }
    expected = e.end;
    prev = e;
  }
  if (expected !== dataLen) {
    throw fail(`${dataLen - expected} unexpected bytes after the last tensor's data`);
  }
  return { metadata, entries };
}
