/**
 * A first look at the WebGPU adapter from a child process. Dawn writes its warnings (lavapipe's
 * "maxDynamic… artificially reduced", for one) from native code straight to the process's stderr,
 * where nothing in JS can catch them; a child's stderr is ours to drop. Auto selection asks here
 * first, so Dawn loads into this process only when its adapter is one auto would use.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { clip } from './format';

export interface AdapterInfo {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

export type ProbeResult =
  | { ok: true; adapter: AdapterInfo | null }
  | { ok: false; status: 'not-installed' | 'failed'; detail: string };

/** What the child prints after MARK: the adapter (null: none), or where it failed. */
interface Said {
  adapter?: AdapterInfo | null;
  loadError?: string;
  adapterError?: string;
}

const PROBE_TIMEOUT_MS = 30_000;
const MARK = 'GPT_STUDIO_PROBE ';

/** Run as `node --input-type=module -e PROBE <webgpu entry URL>`; prints one MARK line. */
const PROBE = `
const say = (o) => process.stdout.write(${JSON.stringify(MARK)} + JSON.stringify(o) + '\\n', () => process.exit(0));
const message = (e) => String(e && e.message ? e.message : e);
let create;
try {
  ({ create } = await import(process.argv[1]));
} catch (e) {
  say({ loadError: message(e) });
}
if (create) {
  try {
    const adapter = await create([]).requestAdapter({ powerPreference: 'high-performance' });
    const info = (adapter && adapter.info) || {};
    const text = (k) => (typeof info[k] === 'string' ? info[k] : undefined);
    say({
      adapter: adapter && {
        vendor: text('vendor'),
        architecture: text('architecture'),
        device: text('device'),
        description: text('description'),
        isFallbackAdapter: info.isFallbackAdapter === true || adapter.isFallbackAdapter === true,
      },
    });
  } catch (e) {
    say({ adapterError: message(e) });
  }
}
`;

/**
 * The adapter Dawn would give this machine, asked in a child process. Undefined where no child
 * can be asked, so the caller asks in-process: inside Electron (the app's engine host, whose
 * stderr nobody reads; its binary runs as Node only where the RunAsNode fuse allows), or where
 * this module cannot locate packages (bundled to CommonJS: import.meta.url is empty).
 */
export async function probeAdapterInChild(): Promise<ProbeResult | undefined> {
  if (process.versions.electron !== undefined) return undefined;
  const entry = resolveWebgpu();
  if (entry === undefined) return undefined;
  if (entry === null) {
    return { ok: false, status: 'not-installed', detail: 'webgpu is not installed' };
  }
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', PROBE, pathToFileURL(entry).href],
      { timeout: PROBE_TIMEOUT_MS, windowsHide: true },
      (err, stdout, stderr) => resolve(readProbe(err, stdout, stderr)),
    );
  });
}

/** The webgpu package's entry file; null when it is not installed, undefined when unknowable. */
function resolveWebgpu(): string | null | undefined {
  let require_: NodeJS.Require;
  try {
    require_ = createRequire(import.meta.url);
  } catch {
    return undefined;
  }
  try {
    return require_.resolve('webgpu');
  } catch {
    return null;
  }
}

function readProbe(
  err: (Error & { killed?: boolean; signal?: string | null }) | null,
  stdout: string,
  stderr: string,
): ProbeResult {
  const line = stdout.split('\n').find((l) => l.startsWith(MARK));
  const said = line ? parse(line.slice(MARK.length)) : undefined;
  if (said?.loadError !== undefined) {
    return failed(`webgpu is installed but failed to load: ${said.loadError}`);
  }
  if (said?.adapterError !== undefined) {
    return failed(`requestAdapter failed: ${said.adapterError}`);
  }
  if (said && 'adapter' in said) return { ok: true, adapter: said.adapter ?? null };
  const why = err?.killed
    ? `took longer than ${PROBE_TIMEOUT_MS / 1000} s`
    : err?.signal
      ? `crashed (${err.signal})`
      : 'gave no answer';
  const rest = withoutDawnNoise(stderr);
  return failed(`the WebGPU adapter probe ${why}${rest ? `: ${rest}` : ''}`);
}

function parse(json: string): Said | undefined {
  try {
    return JSON.parse(json) as Said;
  } catch {
    return undefined;
  }
}

function failed(detail: string): ProbeResult {
  return { ok: false, status: 'failed', detail: clip(detail, 600) };
}

/** stderr without Dawn's own warnings ("Warning: …" lines), joined on one line. */
function withoutDawnNoise(stderr: string): string {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^Warning: /.test(l))
    .join(' | ');
}
