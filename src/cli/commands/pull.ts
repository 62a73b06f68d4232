/** `pull`: a GPT-2 model from the Hugging Face Hub into the shared Hugging Face cache. */
import type { OptionSpec } from '../args';
import { onInterrupt, EXIT, type Command, type Context } from '../runtime';
import { formatBytes } from '../../common/format';
import { formatDuration } from '../output';

const OPTIONS: OptionSpec[] = [
  {
    name: 'repo',
    kind: 'string',
    value: 'REPO',
    required: true,
    positional: true,
    description: 'the model repo: gpt2, distilgpt2, gpt2-medium, gpt2-large, gpt2-xl, or org/name',
  },
  {
    name: 'revision',
    kind: 'string',
    value: 'REV',
    default: 'main',
    description: 'a branch, tag, commit, or refs/pr/N (e.g. the Hub bot’s safetensors conversion)',
  },
  {
    name: 'endpoint',
    kind: 'string',
    value: 'URL',
    defaultText: '$HF_ENDPOINT, else https://huggingface.co',
    description: 'the Hub or a mirror',
  },
  {
    name: 'token',
    kind: 'string',
    value: 'TOKEN',
    defaultText: '$HF_TOKEN, else the token `hf auth login` saved',
    description:
      'an access token (hf_…) for gated or private repos; prefer HF_TOKEN, which ps does not show',
  },
];

async function run(ctx: Context): Promise<number> {
  const { args, out } = ctx;
  const { hubCacheDir, hubEndpoint, hubOffline, hubToken } = await import('../../engine/hub/cache');
  const { pullModel } = await import('../../engine/hub/pull');
  const repo = args.requireString('repo');
  const token = args.string('token') ?? (await hubToken());
  const interrupt = onInterrupt(
    out,
    'stopping; the partial download is kept and the next pull resumes it',
  );
  try {
    const r = await pullModel({
      repo,
      revision: args.string('revision') ?? 'main',
      endpoint: (args.string('endpoint') ?? hubEndpoint()).replace(/\/+$/, ''),
      ...(token ? { token } : {}),
      cacheDir: hubCacheDir(),
      offline: hubOffline(),
      signal: interrupt.signal,
      onProgress: (p) => {
        if (out.json) return out.emit({ type: 'hub.progress', ...p });
        if (p.phase !== 'download') return out.status(p.message);
        out.status(
          `${p.file ?? ''}  ${formatBytes(p.bytes)} / ${formatBytes(p.totalBytes)}  ` +
            `${formatBytes(p.bytesPerSecond)}/s  ETA ${formatDuration((p.etaSeconds ?? NaN) * 1000)}`,
        );
      },
    });
    if (out.json) {
      out.emit({ type: 'hub.result', ...r });
      return EXIT.ok;
    }
    out.endLive();
    for (const n of r.notes) out.note(`note: ${n}`);
    const how = r.cached
      ? 'already cached, nothing downloaded'
      : `${formatBytes(r.downloadedBytes)} downloaded`;
    out.line(
      `pulled ${repo}@${r.revision} (commit ${r.commit.slice(0, 10)}) to ${r.dir}: ${r.files.length} files, ${formatBytes(r.bytes)} (${how})`,
    );
    out.note(`  generate: gpt-studio generate --model ${r.dir} --prompt "..."`);
    return EXIT.ok;
  } finally {
    interrupt.dispose();
  }
}

export const command: Command = {
  command: 'pull',
  summary: 'download a GPT-2 model from the Hugging Face Hub (gpt2, distilgpt2, org/name)',
  usage: 'REPO [--revision REV] [--endpoint URL] [--token TOKEN]',
  description:
    'Downloads config.json, model.safetensors and the tokenizer of a GPT-2 repo into the ' +
    'Hugging Face cache ($HF_HOME/hub, default ~/.cache/huggingface/hub), in the layout ' +
    "Python's transformers uses, so each finds the other's downloads; what is already cached " +
    'is not downloaded again. A cancelled download (Ctrl-C) resumes where it stopped, and each ' +
    "file is checked against the Hub's sha256 before it is used. Refused, with the reason: a " +
    'repo that is not GPT-2, one with only pytorch_model.bin (unpickling runs code), a gated or ' +
    'private repo without a token, a missing repo; without the network (or with ' +
    'HF_HUB_OFFLINE=1) the cached snapshot is used, or what is cached is listed. The snapshot ' +
    'folder it prints is a model for generate, score, finetune and export, and the app lists it. ' +
    'With --json the last line is {"type":"hub.result","repo","revision","commit","dir","files",' +
    '"bytes","downloadedBytes","cached","notes"}.',
  options: OPTIONS,
  examples: [
    'pull gpt2',
    'pull distilgpt2 --json',
    'pull openai-community/gpt2-medium --revision main',
  ],
  run,
};
