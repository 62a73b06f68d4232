#!/usr/bin/env bash
# Rebuilds the sample model the app ships, resources/models/austen-tiny: a tiny GPT (4 layers,
# 128 wide, context 128, byte-level BPE with 4096 tokens) pretrained on the bundled Austen corpus
# with the project's own CLI. About half an hour on 2 CPU cores (wasm).
#
#   scripts/build-sample-model.sh [RUN_DIR]      (default: runs/austen-tiny)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/austen-tiny}
OUT=resources/models/austen-tiny

if [ ! -f "$RUN/state.json" ]; then
  npm run --silent cli -- pretrain --corpus resources/samples/austen.txt --out "$RUN" \
    --tokenizer bpe --vocab-size 4096 --preset tiny --steps 1500 --batch-size 16 \
    --lr 2e-3 --warmup 100 --eval-every 250 --save-every 250 --sample-every 500
fi

# the Hugging Face model folder only: no optimizer state, checkpoints or tokenized corpus
rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp"
for f in config.json generation_config.json model.safetensors tokenizer.json vocab.json merges.txt; do
  cp "$RUN/$f" "$OUT.tmp/$f"
done
node -e '
const fs = require("fs");
const [run, out] = process.argv.slice(1);
const s = JSON.parse(fs.readFileSync(run + "/state.json", "utf8"));
const c = JSON.parse(fs.readFileSync(run + "/config.json", "utf8"));
const card = `# austen-tiny

The sample model GPT Studio ships, so the console and the fine-tune wizard work on first launch.

- Architecture: GPT-2 layout, ${c.n_layer} layers, ${c.n_head} heads, width ${c.n_embd}, context ${c.n_positions}
- Tokenizer: byte-level BPE, ${c.vocab_size} tokens, trained on the corpus
- Data: resources/samples/austen.txt (Jane Austen, Project Gutenberg, public domain)
- Training: ${s.step} steps of ${s.train.batchSize} × ${c.n_positions} tokens, AdamW, lr ${s.train.lr} (cosine to ${s.train.minLr}), seed ${s.train.seed}
- Validation loss: ${s.valLoss === null ? "n/a" : s.valLoss.toFixed(3)} nats/token (best ${s.bestValLoss === null ? "n/a" : s.bestValLoss.toFixed(3)})
- Built: ${s.updatedAt.slice(0, 10)} by scripts/build-sample-model.sh

It writes Austen-flavoured English, not facts: a model this small learns style and spelling, not
knowledge. Load it like any Hugging Face GPT-2 folder.
`;
fs.writeFileSync(out + "/README.md", card);
' "$RUN" "$OUT.tmp"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
echo "wrote $OUT"
