/**
 * The engine host's handlers for the app itself (the core of src/common/api.ts): what the app
 * is and runs on, the models every page picks from (and deletes), and browser mode's uploads.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { getBackendReport, type BackendReport } from '../../engine/backend';
import { defaultWorkers } from '../../engine/train/parallel/cores';
import * as tf from '../../engine/tf';
import type { Handlers, HostContext } from '../context';
import { deleteModel, listModels } from '../models';
import type { Uploads } from '../uploads';

export function appVersion(): string {
  // Electron's main passes app.getVersion(); package.json is not beside a bundled host
  if (process.env.GPT_STUDIO_VERSION) return process.env.GPT_STUDIO_VERSION;
  try {
    const pkg = fileURLToPath(new URL('../../../package.json', import.meta.url));
    return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

export function defaultResourcesDir(): string {
  if (process.env.GPT_STUDIO_RESOURCES) return process.env.GPT_STUDIO_RESOURCES;
  return fileURLToPath(new URL('../../../resources', import.meta.url));
}

function engineMemory(): { tensors: number; bytes: number } {
  const m = tf.memory();
  return { tensors: m.numTensors, bytes: m.numBytes };
}

export function appHandlers(ctx: HostContext, uploads: Uploads): Handlers {
  return {
    'app.info': () => ({
      version: appVersion(),
      workspace: ctx.workspace,
      resources: ctx.resourcesDir,
      backend: withWorkers(getBackendReport()),
      pid: process.pid,
      memory: engineMemory(),
    }),
    'backend.report': () => withWorkers(getBackendReport()),
    'models.list': () => listModels(ctx),
    'models.delete': (p) => deleteModel(ctx, p.model),
    'uploads.begin': (p) => uploads.begin(p.name, p.size),
    'uploads.chunk': (p) => uploads.chunk(p.uploadId, p.offset, p.data),
    'uploads.end': (p) => uploads.end(p.uploadId),
    'uploads.abort': (p) => uploads.abort(p.uploadId),
  };
}

/** The report with the data-parallel training workers its backend defaults to. */
function withWorkers(report: BackendReport | undefined): BackendReport | null {
  return report ? { ...report, trainWorkers: defaultWorkers(report.name) } : null;
}
