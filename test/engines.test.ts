/**
 * package.json's `engines.node` must be true: every locked package accepts every Node it admits
 * (otherwise `npm ci` warns EBADENGINE there), and the Node running the tests (CI's) is one of them.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

interface Semver {
  subset(sub: string, dom: string): boolean;
  satisfies(version: string, range: string): boolean;
  validRange(range: string): string | null;
}
const require_ = createRequire(import.meta.url);
const semver = require_('semver') as Semver;

interface LockEntry {
  version?: string;
  engines?: { node?: string } | string[];
}
const readJson = <T>(file: string): T =>
  JSON.parse(readFileSync(new URL(`../${file}`, import.meta.url), 'utf8')) as T;
const pkg = readJson<{ engines: { node: string } }>('package.json');
const lock = readJson<{ packages: Record<string, LockEntry> }>('package-lock.json');
const declared = pkg.engines.node;

/** "node_modules/a/node_modules/@b/c" → "@b/c". */
const nameOf = (key: string): string => key.slice(key.lastIndexOf('node_modules/') + 13);

describe('engines.node', () => {
  it('is a valid range, and package-lock.json records the same one', () => {
    expect(semver.validRange(declared), declared).not.toBeNull();
    expect(lock.packages['']?.engines).toEqual(pkg.engines);
  });

  it('is admitted by every package in package-lock.json (no EBADENGINE on a declared Node)', () => {
    const refusing = Object.entries(lock.packages)
      .filter(([key]) => key !== '')
      .flatMap(([key, entry]) => {
        const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
        if (range === undefined || semver.subset(declared, range)) return [];
        return [`${nameOf(key)}@${entry.version ?? '?'} wants node ${range}`];
      });
    expect(refusing, `package.json says node ${declared}, but`).toEqual([]);
  });

  it("admits the Node running this test (CI's)", () => {
    expect(semver.satisfies(process.version, declared), `${process.version} vs ${declared}`).toBe(
      true,
    );
  });
});
