/** The shard files a dataset's normalized text is written to. */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/** A new shard starts once one holds this many bytes. */
export const SHARD_BYTES = 64 * 2 ** 20;

/** Writes text into shards of about SHARD_BYTES: text-000.txt, text-001.txt, … */
export class ShardWriter {
  readonly names: string[] = [];
  private handle: fs.FileHandle | null = null;
  private bytes = 0;
  constructor(private readonly dir: string) {}
  async write(text: string): Promise<void> {
    if (!this.handle || this.bytes >= SHARD_BYTES) {
      await this.handle?.close();
      const name = `text-${String(this.names.length).padStart(3, '0')}.txt`;
      this.names.push(name);
      this.handle = await fs.open(path.join(this.dir, name), 'w');
      this.bytes = 0;
    }
    const buf = Buffer.from(text, 'utf8');
    await this.handle.write(buf);
    this.bytes += buf.length;
  }
  async close(): Promise<void> {
    await this.handle?.sync();
    await this.handle?.close();
    this.handle = null;
  }
  /** Closes the open shard without syncing it (an import that failed). */
  async abandon(): Promise<void> {
    await this.handle?.close().catch(() => {});
    this.handle = null;
  }
}
