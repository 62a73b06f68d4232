/**
 * Browser mode's settings: the renderer's part of the app's settings (one schema,
 * src/common/settings.ts) in `<workspace>/settings.json`, written atomically, so they live with
 * the workspace rather than in one browser's storage for one origin. A corrupt file (not JSON, or
 * values the schema refuses) is set aside as `settings.json.corrupt-<timestamp>` and the defaults
 * are used, with a notice, as in Electron.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import {
  corruptSettingsNotice,
  describeSettingsIssues,
  UI_DEFAULTS,
  uiPart,
  uiSettingsSchema,
  type SettingsHolder,
  type UiSettings,
  type UiSettingsPatch,
} from '../common/settings';
import { writeJsonAtomic } from '../engine/util/atomic';

export const SETTINGS_FILE = 'settings.json';

/** The file's settings, or why they cannot be used. */
function parseSettings(text: string): { ok: true; value: UiSettings } | { ok: false; why: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, why: `not JSON: ${(err as Error).message}` };
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    return { ok: false, why: 'not a JSON object' };
  }
  // keys missing from an older file take their defaults; unknown ones are dropped
  const r = uiSettingsSchema.safeParse({ ...UI_DEFAULTS, ...json });
  return r.success
    ? { ok: true, value: uiPart(r.data) }
    : { ok: false, why: describeSettingsIssues(r.error) };
}

export class WorkspaceSettings implements SettingsHolder {
  /** The last write in flight: writes go one at a time, each on top of the one before. */
  private saving: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly file: string,
    private current: UiSettings,
  ) {}

  /** Opens `<workspace>/settings.json` (the defaults when there is none). */
  static async open(
    workspace: string,
    now: () => Date = () => new Date(),
  ): Promise<{ settings: WorkspaceSettings; notice: string | null }> {
    const file = path.join(workspace, SETTINGS_FILE);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      const notice =
        (err as NodeJS.ErrnoException).code === 'ENOENT'
          ? null
          : `${file}: ${(err as Error).message}; the settings are the defaults until it can be read`;
      return { settings: new WorkspaceSettings(file, { ...UI_DEFAULTS }), notice };
    }
    const parsed = parseSettings(text);
    if (parsed.ok) return { settings: new WorkspaceSettings(file, parsed.value), notice: null };
    const backup = `${file}.corrupt-${now().toISOString().replace(/[:.]/g, '-')}`;
    await fs.rename(file, backup);
    return {
      settings: new WorkspaceSettings(file, { ...UI_DEFAULTS }),
      notice: `${file}: ${corruptSettingsNotice(parsed.why, path.basename(backup))}`,
    };
  }

  get(): UiSettings {
    return { ...this.current };
  }

  /** Applies a validated patch and saves the whole; the error names the file. */
  set(patch: UiSettingsPatch): Promise<UiSettings> {
    const write = this.saving.then(async () => {
      const next = { ...this.current, ...patch };
      try {
        await writeJsonAtomic(this.file, next);
      } catch (err) {
        throw new Error(`could not save the settings to ${this.file}: ${(err as Error).message}`);
      }
      this.current = next;
      return this.get();
    });
    this.saving = write.catch(() => undefined);
    return write;
  }
}
