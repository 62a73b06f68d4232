/**
 * Why a pull is refused, each said so a person knows what to do next. `code` tells callers
 * (the host, the CLI) how to classify it; the message is the same everywhere.
 */
export type RefusalCode =
  | 'bad-input'
  | 'not-gpt2'
  | 'bin-only'
  | 'sharded'
  | 'no-weights'
  | 'no-tokenizer'
  | 'needs-token'
  | 'token-refused'
  | 'not-found'
  | 'revision-not-found'
  | 'offline'
  | 'corrupt'
  | 'hub-error';

export class HubRefusal extends Error {
  override name = 'HubRefusal';
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
  }
}

const at = (repo: string, revision: string) => (revision === 'main' ? repo : `${repo}@${revision}`);

export function notGpt2(repo: string, modelType: unknown): HubRefusal {
  return new HubRefusal(
    'not-gpt2',
    `${repo} is not a GPT-2 model: its config.json says model_type ${JSON.stringify(modelType ?? null)}; ` +
      'GPT Studio runs the GPT-2 architecture only (model_type "gpt2", e.g. gpt2, distilgpt2, gpt2-medium)',
  );
}

export function binOnly(repo: string, revision: string): HubRefusal {
  return new HubRefusal(
    'bin-only',
    `${at(repo, revision)} has only pytorch_model.bin, which is refused: loading it means unpickling, ` +
      'and unpickling can run arbitrary code. Pull a revision with model.safetensors instead: the Hub ' +
      "often has one as an open pull request by the safetensors convert bot (see the repo's " +
      `"Community" tab), e.g. gpt-studio pull ${repo} --revision refs/pr/1`,
  );
}

export function sharded(repo: string, revision: string): HubRefusal {
  return new HubRefusal(
    'sharded',
    `${at(repo, revision)} has sharded weights (model.safetensors.index.json), which are not supported; GPT-2 models fit one model.safetensors`,
  );
}

export function noWeights(repo: string, revision: string, files: string[]): HubRefusal {
  const shown = files.slice(0, 12).join(', ') + (files.length > 12 ? ', …' : '');
  return new HubRefusal(
    'no-weights',
    `${at(repo, revision)} has no model.safetensors (its files: ${shown || 'none'})`,
  );
}

export function noTokenizer(repo: string, revision: string): HubRefusal {
  return new HubRefusal(
    'no-tokenizer',
    `${at(repo, revision)} has no tokenizer: neither tokenizer.json nor vocab.json with merges.txt`,
  );
}

export function needsToken(repo: string, why: 'gated' | 'private-or-missing'): HubRefusal {
  const what =
    why === 'gated'
      ? `${repo} is gated: the Hub lets only signed-in users who accepted its conditions download it`
      : `${repo} is private or gated, or does not exist (the Hub answered 401/403 to a request without a token)`;
  return new HubRefusal(
    'needs-token',
    `${what}. Set HF_TOKEN (or pass --token) to an access token of an account that may read it, from https://huggingface.co/settings/tokens`,
  );
}

export function tokenRefused(repo: string, status: number): HubRefusal {
  return new HubRefusal(
    'token-refused',
    `${repo}: the Hub refused the token (${status}): it is invalid, or its account may not read this repo; for a gated repo, accept its conditions on the repo's page first`,
  );
}

export function notFound(repo: string, endpoint: string): HubRefusal {
  return new HubRefusal(
    'not-found',
    `${repo}: no such model repo on ${endpoint} (404); check the spelling (e.g. gpt2, openai-community/gpt2)`,
  );
}

export function revisionNotFound(repo: string, revision: string): HubRefusal {
  return new HubRefusal(
    'revision-not-found',
    `${repo} has no revision "${revision}" (404): use a branch, tag, commit or refs/pr/N that exists`,
  );
}

export function offline(
  endpoint: string,
  cause: string,
  cached: Array<{ repoId: string; refs: string[] }>,
): HubRefusal {
  const list = cached.map((c) => (c.refs.length ? `${c.repoId} (${c.refs.join(', ')})` : c.repoId));
  return new HubRefusal(
    'offline',
    `cannot reach ${endpoint} (${cause}): offline. ` +
      (list.length
        ? `Cached models you can use without the network: ${list.join(', ')}`
        : 'No models are cached yet, so nothing can be used until the network is back'),
  );
}

export function corrupt(file: string, algorithm: string, expected: string, got: string) {
  return new HubRefusal(
    'corrupt',
    `${file} is corrupted: its ${algorithm} is ${got} but the Hub says ${expected}; the partial download was removed, pull again`,
  );
}
