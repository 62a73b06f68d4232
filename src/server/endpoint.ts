/**
 * Where browser mode listens, kept in the workspace so that a restart serves the same URL and the
 * open tabs reconnect by themselves: `<workspace>/server.json` holds `{port, token}`, written
 * atomically with mode 0600 (the token is the key to the engine). `--port N` wins over the saved
 * port, `--new-token` replaces the saved token; a saved port another process took is replaced by a
 * free one, and the log says so.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { z } from 'zod';
import { describeIssues } from '../common/api';
import { writeJsonAtomic } from '../engine/util/atomic';

export const ENDPOINT_FILE = 'server.json';

const endpointSchema = z.object({
  port: z.number().int().min(1).max(65535),
  token: z
    .string()
    .min(1)
    .max(256)
    .regex(/^[A-Za-z0-9._~-]+$/, 'must be URL-safe'),
});
export type Endpoint = z.infer<typeof endpointSchema>;

/** 32 random bytes, hex. */
export function newToken(): string {
  return randomBytes(32).toString('hex');
}

/**
 * The port and token the last start saved, or null when there are none. A file that cannot be
 * read or is not a valid endpoint is reported (naming it) and ignored: the start picks new ones.
 */
export async function readEndpoint(
  workspace: string,
  log: (msg: string) => void,
): Promise<Endpoint | null> {
  const file = path.join(workspace, ENDPOINT_FILE);
  const ignored = (why: string) => {
    log(`gpt-studio: ${file}: ${why}; a new port and token are used`);
    return null;
  };
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    return ignored((err as Error).message);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return ignored(`not JSON (${(err as Error).message})`);
  }
  const r = endpointSchema.safeParse(json);
  return r.success ? r.data : ignored(describeIssues(r.error.issues));
}

/** Saves the endpoint for the next start (atomically, readable by its owner only). */
export async function saveEndpoint(workspace: string, endpoint: Endpoint): Promise<void> {
  const file = path.join(workspace, ENDPOINT_FILE);
  await writeJsonAtomic(file, endpoint, { mode: 0o600 });
}

/** The token: one given (tests), a fresh one (`--new-token`, or none saved), else the saved one. */
export function chooseToken(
  opts: { token?: string; newToken?: boolean },
  saved: Endpoint | null,
): string {
  if (opts.token !== undefined) return opts.token;
  if (opts.newToken || !saved) return newToken();
  return saved.token;
}

/** The port to ask for: `--port` wins (0 = any free port), else the saved one, else any. */
export function choosePort(
  opts: { port?: number },
  saved: Endpoint | null,
): { port: number; fromSaved: boolean } {
  if (opts.port !== undefined) return { port: opts.port, fromSaved: false };
  return saved ? { port: saved.port, fromSaved: true } : { port: 0, fromSaved: false };
}

function listenOn(server: http.Server, port: number, bind: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, bind, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Listens on the wanted port. The saved port may have been taken meanwhile: then a free one is
 * used and the log says that open tabs must be reopened. A port given with `--port` that is taken
 * is an error.
 */
export async function listen(
  server: http.Server,
  bind: string,
  want: { port: number; fromSaved: boolean },
  log: (msg: string) => void,
): Promise<number> {
  try {
    return await listenOn(server, want.port, bind);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!want.fromSaved || (code !== 'EADDRINUSE' && code !== 'EACCES')) throw err;
    const port = await listenOn(server, 0, bind);
    log(
      `gpt-studio: port ${want.port}, where the last start served, is taken (${code}); ` +
        `serving on port ${port} instead: open the new address below (tabs open on the old one cannot reconnect)`,
    );
    return port;
  }
}
