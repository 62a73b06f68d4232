/**
 * The bench's llama.cpp peer, without llama.cpp: finding node-llama-cpp beside the project (and
 * saying what to run when it is not there), and a case's row from ours and the peer's figures.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LLAMA_PEER_VERSION,
  probeLlamaPeer,
  summariseLlama,
  type LlamaPeerResult,
} from '../../bench/llama';

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gpt-studio-bench-llama-'));
});
afterAll(() => fs.rm(dir, { recursive: true, force: true }));

async function installFake(version: string): Promise<void> {
  const pkg = path.join(dir, 'node_modules', 'node-llama-cpp');
  await fs.mkdir(pkg, { recursive: true });
  await fs.writeFile(path.join(pkg, 'package.json'), JSON.stringify({ version }));
}

describe('probeLlamaPeer', () => {
  it('says to run the install script when node-llama-cpp is missing', () => {
    expect(probeLlamaPeer(dir)).toEqual({
      reason: `llama.cpp peer not installed: run scripts/install-bench-peers.sh (looked in ${dir})`,
    });
  });

  it('refuses another version than the pinned one, and takes the pinned one', async () => {
    await installFake('3.22.0');
    expect(probeLlamaPeer(dir)).toEqual({
      reason: expect.stringMatching(
        /node-llama-cpp 3\.22\.0 is in .*, the bench pins 3\.21\.1: run scripts\/install-bench-peers\.sh/,
      ),
    });
    await installFake(LLAMA_PEER_VERSION);
    expect(probeLlamaPeer(dir)).toEqual({ version: '3.21.1' });
  });
});

function peer(oneThread: number, twoThreads: number, tokens?: number[]): LlamaPeerResult {
  return {
    version: '3.21.1',
    llamaCpp: 'ggml-org/llama.cpp v0.4.0',
    systemInfo: 'CPU : AVX2 = 1',
    loadSeconds: 0.5,
    runs: [
      { threads: 1, tokensPerSecond: oneThread, samplesMs: [1000], ...(tokens ? { tokens } : {}) },
      { threads: 2, tokensPerSecond: twoThreads, samplesMs: [700] },
    ],
    peakRssMB: 550,
    wallSeconds: 20,
  };
}

describe('summariseLlama', () => {
  it('puts the peer beside ours: medians, ratios at 1 thread and at the default threads', () => {
    const s = summariseLlama(
      [
        { ours: { tokensPerSecond: 20, tokens: [5, 6, 7] }, llama: peer(40, 50, [5, 6, 9]) },
        { ours: { tokensPerSecond: 20 }, llama: peer(30, 70) },
        { ours: { tokensPerSecond: 20 }, llama: peer(50, 60) },
      ],
      20,
    );
    expect(s.ratio).toBe(0.5);
    expect(s.llama).toMatchObject({
      tokensPerSecond: 40,
      threads: 1,
      defaultThreads: { threads: 2, tokensPerSecond: 60, ratio: 0.333 },
      peakRssMB: 550,
    });
    expect(s.notes).toEqual([expect.stringMatching(/^greedy tokens: the first 2 of 3 the same/)]);
  });

  it('has no ratio, and says why, when the peer was skipped', () => {
    const why = 'skipped: llama.cpp peer not installed: run scripts/install-bench-peers.sh';
    const s = summariseLlama([{ ours: { tokensPerSecond: 20 }, llama: null }], 20, why);
    expect(s).toEqual({ llama: null, ratio: null, notes: [`llama.cpp peer: ${why}`] });
  });
});
