import { availableParallelism } from 'node:os';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { defineConfig } from 'vitest/config';

/**
 * Test files that share one module registry per worker (isolate: false): they load tfjs and the
 * engine once per worker instead of once per file. Files that mock modules, switch the tfjs
 * backend or spawn processes keep a fresh process each.
 */
const SHARED = [
  'test/engine/**/*.test.ts',
  'test/common/**/*.test.ts',
  'test/renderer/**/*.test.ts',
  'test/cli/**/*.test.ts',
  'test/server/**/*.test.ts',
  'test/e2e/**/*.test.ts',
];
const OWN_PROCESS = [
  'test/cli/smoke.test.ts',
  'test/engine/backend.test.ts',
  'test/engine/backend-webgpu.test.ts',
  'test/engine/model/webgpu.test.ts',
  'test/engine/model/gradients.test.ts',
  'test/engine/model/memory.test.ts',
  'test/engine/generate/wasmDecoder.test.ts',
  'test/engine/checkpoint/limits.test.ts',
  // llama.cpp's native addon and its threads (node-llama-cpp) stay out of the shared workers
  'test/engine/checkpoint/gguf-llama.test.ts',
];

/** The files that take longest (child processes, Chromium, PyTorch), started first. */
const SLOW = [
  /model\/memory\.test/,
  /^test\/e2e\//,
  /electronegativity\.test/,
  /reference\.test/,
  /hostile\.test/,
  /checkpoint\/import\.test/,
];

/**
 * Slow isolated files first, then the other isolated ones, then the shared ones back to back (a
 * worker is reused only while the next file in the queue is a shared one too). Within each group,
 * vitest's own order: failed first, then longest last time, or largest.
 */
class SlowFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => {
      if (f.project.config.isolate === false) return 2;
      const rel = f.moduleId.slice(f.project.config.root.length).replace(/^\//, '');
      return SLOW.some((re) => re.test(rel)) ? 0 : 1;
    };
    const sorted = await super.sort(files);
    return sorted
      .map((f, i) => ({ f, i, r: rank(f) }))
      .sort((a, b) => a.r - b.r || a.i - b.i)
      .map(({ f }) => f);
  }
}

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // expect.poll waits for what a page or a job does next: on a loaded 2-core machine that can take
    // longer than vitest's default second
    expect: { poll: { timeout: 15_000 } },
    pool: 'forks',
    // One worker per core (vitest's default is one fewer). One more than the cores kept the CPUs
    // busier while files wait on child processes, Chromium or the engine host, but the contention
    // cost more than it filled: on 2 cores npm test took 213 s at 3 workers and 188 s at 2
    // (2026-12-08, back to back).
    maxWorkers: Number(process.env.TEST_WORKERS) || availableParallelism(),
    sequence: { sequencer: SlowFirst },
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: { name: 'shared', include: SHARED, exclude: OWN_PROCESS, isolate: false },
      },
      {
        extends: true,
        test: { name: 'isolated', include: ['test/**/*.test.ts'], exclude: SHARED },
      },
      {
        extends: true,
        test: { name: 'own-process', include: OWN_PROCESS },
      },
    ],
  },
});
