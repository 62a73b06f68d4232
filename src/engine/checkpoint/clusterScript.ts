/**
 * train.py of the cluster export (./cluster.ts): GPT-2, its safetensors I/O, GPT Studio's batch
 * sampler, learning-rate schedule and AdamW, in plain PyTorch with DistributedDataParallel. Each
 * piece mirrors the engine's: model/ (block.ts, attention.ts, dropout sites), train/schedule.ts,
 * train/optimizer.ts, train/data.ts (sampleRows), train/step.ts (trainStep, evaluate) and
 * util/rng.ts (sfc32); test/engine/checkpoint/cluster.test.ts runs it under torchrun and holds its
 * losses equal to the engine's.
 */
export const CLUSTER_SCRIPT = String.raw`#!/usr/bin/env python3
"""Continue a GPT Studio pretraining run with PyTorch DistributedDataParallel.

    # one machine, N GPUs (or N CPU processes)
    torchrun --standalone --nproc_per_node N train.py
    # M machines, the same on each (R = 0 ... M-1, HOST = node 0)
    torchrun --nnodes M --nproc_per_node N --node_rank R --rdzv_backend c10d --rdzv_endpoint HOST:29500 train.py

Plain PyTorch (>= 1.13): the GPT-2 model, the safetensors reader and writer, AdamW and the
learning-rate schedule are all in this file, written to match GPT Studio's engine. nccl on GPUs,
gloo on CPU. transformers is not needed; when it is installed, the final checkpoint is loaded with
GPT2LMHeadModel once as a check.

Starts from model/ (the weights), training_state.json (the step reached, the batch sampler's
state) and optimizer.safetensors (AdamW's moments), or from a checkpoint of its own (--resume).
Each step draws batch_size x grad_accum x world_size windows of block_size + 1 tokens from
data/train.bin with GPT Studio's generator (sfc32), in the order micro-batch, rank, row; rank r
trains on its rows. With one process and the run's settings that is the local run's own next
batches. Checkpoints are Hugging Face GPT-2 folders (output/checkpoint-STEP/) that
'gpt-studio import' takes back.
"""
import argparse
import contextlib
import json
import math
import mmap
import os
import shutil
import struct
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "model")
DATA_DIR = os.path.join(HERE, "data")
HPARAMS_FILE = os.path.join(HERE, "hyperparameters.json")
STATE_FILE = os.path.join(HERE, "training_state.json")
OPTIMIZER_FILE = os.path.join(HERE, "optimizer.safetensors")

# ---------------------------------------------------------------------------------------------
# safetensors, read and written with json + struct + torch.frombuffer (little-endian machines)

ST_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


def read_safetensors(path):
    """{name: float32 tensor} and the metadata; tensors of other dtypes (mask buffers) are skipped."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", None) or {}
    out = {}
    for name, info in header.items():
        dtype = ST_DTYPES.get(info["dtype"])
        if dtype is None:
            continue
        begin, end = info["data_offsets"]
        if end == begin:
            t = torch.zeros(0, dtype=dtype)
        else:
            t = torch.frombuffer(bytearray(raw[8 + n + begin : 8 + n + end]), dtype=dtype)
        out[name] = t.reshape(info["shape"]).float()
    return out, meta


def write_safetensors(path, tensors, metadata):
    """Writes float32 tensors in the given order, atomically (a temp file renamed into place)."""
    header, offset, blobs = {"__metadata__": {k: str(v) for k, v in metadata.items()}}, 0, []
    for name, t in tensors.items():
        t = t.detach().to("cpu", torch.float32).contiguous()
        nbytes = t.numel() * 4
        buf = bytearray(nbytes)
        if nbytes:
            torch.frombuffer(buf, dtype=torch.float32).copy_(t.reshape(-1))
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
        blobs.append(buf)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# GPT-2, as GPT Studio's engine computes it: pre-LayerNorm blocks, tied LM head, dropout on the
# embeddings, the attention probabilities and both residual branches


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACTIVATIONS = {"gelu_new": gelu_new, "gelu_pytorch_tanh": gelu_new, "gelu": F.gelu}


class Conv1D(nn.Module):
    """y = x W + b with W [in, out]: GPT-2's layout, so the names and shapes are the checkpoint's."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], -1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_head, self.n_embd = cfg["n_head"], cfg["n_embd"]
        self.c_attn = Conv1D(self.n_embd, 3 * self.n_embd)
        self.c_proj = Conv1D(self.n_embd, self.n_embd)
        self.attn_drop = nn.Dropout(cfg["attn_pdrop"])
        self.resid_drop = nn.Dropout(cfg["resid_pdrop"])

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // self.n_head))
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        att = self.attn_drop(att.masked_fill(~causal, float("-inf")).softmax(dim=-1))
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.resid_drop(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = Conv1D(cfg["n_embd"], 4 * cfg["n_embd"])
        self.c_proj = Conv1D(4 * cfg["n_embd"], cfg["n_embd"])
        self.act = ACTIVATIONS[cfg.get("activation_function", "gelu_new")]
        self.drop = nn.Dropout(cfg["resid_pdrop"])

    def forward(self, x):
        return self.drop(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        eps = cfg.get("layer_norm_epsilon", 1e-5)
        self.ln_1 = nn.LayerNorm(cfg["n_embd"], eps=eps)
        self.attn = Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg["n_embd"], eps=eps)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Parameter names are GPT-2's own (wte.weight, h.0.attn.c_attn.weight, ..., ln_f.bias)."""

    def __init__(self, cfg):
        super().__init__()
        self.wte = nn.Embedding(cfg["vocab_size"], cfg["n_embd"])
        self.wpe = nn.Embedding(cfg["n_positions"], cfg["n_embd"])
        self.drop = nn.Dropout(cfg["embd_pdrop"])
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg["n_layer"]))
        self.ln_f = nn.LayerNorm(cfg["n_embd"], eps=cfg.get("layer_norm_epsilon", 1e-5))

    def forward(self, idx, targets):
        """Mean cross-entropy of the next-token predictions over all B x T positions."""
        T = idx.shape[1]
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def load_weights(model, path):
    tensors, meta = read_safetensors(path)
    tensors = {k[len("transformer.") :] if k.startswith("transformer.") else k: v for k, v in tensors.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    if missing:
        sys.exit(f"{path}: missing tensors {', '.join(missing[:5])}")
    for k, v in own.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            sys.exit(f"{path}: {k} has shape {list(tensors[k].shape)}, the model needs {list(v.shape)}")
    model.load_state_dict({k: tensors[k] for k in own})
    return meta


# ---------------------------------------------------------------------------------------------
# GPT Studio's generator (sfc32 seeded by splitmix32), its batches, schedule and AdamW

M32 = 0xFFFFFFFF


class Rng:
    def __init__(self, seed):
        if isinstance(seed, int):
            x, s = seed & M32, []
            for _ in range(4):
                x = (x + 0x9E3779B9) & M32
                z = ((x ^ (x >> 16)) * 0x85EBCA6B) & M32
                z = ((z ^ (z >> 13)) * 0xC2B2AE35) & M32
                s.append(z ^ (z >> 16))
            self.s = s
            for _ in range(12):
                self.next_u32()
        else:
            self.s = [int(v) & M32 for v in seed]

    def next_u32(self):
        a, b, c, d = self.s
        t = (a + b + d) & M32
        c2 = ((((c << 21) & M32) | (c >> 11)) + t) & M32
        self.s = [b ^ (b >> 9), (c + ((c << 3) & M32)) & M32, c2, (d + 1) & M32]
        return t

    def int(self, n):
        return math.floor(self.next_u32() / 4294967296 * n)


def read_tokens(path, dtype):
    """The token file mapped as a 1-D tensor (int16 holding uint16, or int32), paged in as read."""
    if os.path.getsize(path) == 0:
        return torch.zeros(0, dtype=torch.int32)
    with open(path, "rb") as f:
        view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    return torch.frombuffer(view, dtype=torch.int16 if dtype == "uint16" else torch.int32)


def window(data, i, n):
    w = data[i : i + n].to(torch.long)
    return w & 0xFFFF if data.dtype == torch.int16 else w


def draw_offsets(rng, n_tokens, block_size, rows):
    """GPT Studio's sampleRows: a uniform start in [0, n - T - 1] per row (0 when that is all)."""
    span = n_tokens - block_size - 1
    return [rng.int(span + 1) if span > 0 else 0 for _ in range(rows)]


def make_batch(data, offsets, block_size, device):
    rows = [window(data, i, block_size + 1) for i in offsets]
    xy = torch.stack(rows).to(device)
    return xy[:, :-1], xy[:, 1:]


def learning_rate(step, t):
    """Linear warmup to lr, then cosine decay to min_lr at steps: GPT Studio's schedule.ts."""
    if step < t["warmup"]:
        return t["lr"] * (step + 1) / t["warmup"]
    if step >= t["steps"]:
        return t["min_lr"]
    ratio = (step - t["warmup"]) / max(1, t["steps"] - t["warmup"])
    return t["min_lr"] + 0.5 * (1 + math.cos(math.pi * ratio)) * (t["lr"] - t["min_lr"])


class AdamW:
    """GPT Studio's AdamW: bias-corrected moments, decoupled decay on 2-D weights only."""

    def __init__(self, named, t):
        self.named = named
        self.b1, self.b2, self.eps, self.wd = t["beta1"], t["beta2"], t["eps"], t["weight_decay"]
        self.m = {n: torch.zeros_like(p) for n, p in named}
        self.v = {n: torch.zeros_like(p) for n, p in named}
        self.t = 0

    def load(self, path, t):
        tensors, _ = read_safetensors(path)
        for n, p in self.named:
            m, v = tensors.get("exp_avg." + n), tensors.get("exp_avg_sq." + n)
            if m is None or v is None or m.numel() != p.numel():
                sys.exit(f"{path}: exp_avg.{n} / exp_avg_sq.{n} missing or the wrong size")
            self.m[n] = m.reshape(p.shape).to(p.device)
            self.v[n] = v.reshape(p.shape).to(p.device)
        self.t = t

    @torch.no_grad()
    def step(self, lr, clip):
        self.t += 1
        bc1, bc2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        for n, p in self.named:
            g = p.grad * clip if clip != 1 else p.grad
            m, v = self.m[n], self.v[n]
            m.mul_(self.b1).add_(g, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            update = (m / bc1) / ((v / bc2).sqrt() + self.eps)
            if self.wd > 0 and p.dim() == 2:
                update = update + self.wd * p
            p.sub_(lr * update)

    def save(self, path, metadata):
        tensors = {}
        for n, _ in self.named:
            tensors["exp_avg." + n] = self.m[n]
            tensors["exp_avg_sq." + n] = self.v[n]
        write_safetensors(path, tensors, metadata)


# ---------------------------------------------------------------------------------------------


def resume_dir():
    """--resume's folder, read before the other options: its settings become their defaults."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--resume")
    return pre.parse_known_args()[0].resume


def parse_args(hp):
    t = hp["train"]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-dir", default=os.path.join(HERE, "output"), help="where the checkpoints go")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue from a checkpoint folder of this script")
    p.add_argument("--steps", type=int, default=t["steps"], help="the schedule's total steps (the run's: %(default)s)")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after N steps of this session (the schedule stays)")
    p.add_argument("--batch-size", type=int, default=t["batch_size"], help="rows per micro-batch per process")
    p.add_argument("--grad-accum", type=int, default=t["grad_accum"], help="micro-batches per step")
    p.add_argument("--lr", type=float, default=t["lr"])
    p.add_argument("--min-lr", type=float, default=t["min_lr"])
    p.add_argument("--warmup", type=int, default=t["warmup"])
    p.add_argument("--eval-every", type=int, default=t["eval_every"], help="0: only at the end")
    p.add_argument("--eval-iters", type=int, default=t["eval_iters"])
    p.add_argument("--save-every", type=int, default=t["save_every"], help="0: only at the end")
    p.add_argument("--keep", type=int, default=2, help="checkpoints kept")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    return p.parse_args()


def setup_distributed(device_choice):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() if device_choice == "auto" else device_choice == "cuda"
    if cuda:
        torch.cuda.set_device(local)
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if world > 1:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return rank, world, device


def log(rank, record, metrics):
    if rank != 0:
        return
    line = json.dumps(record)
    print(line, flush=True)
    with open(metrics, "a") as f:
        f.write(line + "\n")


@torch.no_grad()
def evaluate(model, val, t, block_size, device):
    """GPT Studio's evaluate: eval_iters batches from a generator seeded seed ^ 0xe7a1, mean loss."""
    was = model.training
    model.eval()
    rng, total = Rng(t["seed"] ^ 0xE7A1), 0.0
    for _ in range(t["eval_iters"]):
        x, y = make_batch(val, draw_offsets(rng, len(val), block_size, t["batch_size"]), block_size, device)
        total += model(x, y).item()
    model.train(was)
    return total / t["eval_iters"]


def save_checkpoint(out_dir, model, opt, cfg, state, keep):
    """output/checkpoint-STEP/: a Hugging Face GPT-2 folder + this script's state to --resume from."""
    step = state["step"]
    final = os.path.join(out_dir, f"checkpoint-{step}")
    tmp = os.path.join(out_dir, f".checkpoint-{step}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name in sorted(os.listdir(MODEL_DIR)):
        if name not in ("config.json", "model.safetensors", "README.md"):
            shutil.copy(os.path.join(MODEL_DIR, name), tmp)
    write_json(os.path.join(tmp, "config.json"), {**cfg, "torch_dtype": "float32"})
    meta = {"format": "pt", "step": step, "exported_by": "gpt-studio train.py"}
    weights = {"transformer." + k: v for k, v in model.state_dict().items()}
    write_safetensors(os.path.join(tmp, "model.safetensors"), weights, meta)
    opt.save(os.path.join(tmp, "optimizer.safetensors"), meta)
    write_json(os.path.join(tmp, "training_state.json"), state)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    steps = sorted(int(n.split("-")[1]) for n in os.listdir(out_dir) if n.startswith("checkpoint-"))
    for old in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(os.path.join(out_dir, f"checkpoint-{old}"), ignore_errors=True)
    return final


def hf_check(path, model, val, block_size, device):
    """With transformers installed, its GPT2LMHeadModel on the checkpoint gives this model's loss."""
    try:
        from transformers import GPT2LMHeadModel
    except ImportError:
        return None
    hf = GPT2LMHeadModel.from_pretrained(path).to(device).eval()
    x, y = make_batch(val, [0], block_size, device)
    with torch.no_grad():
        ours = model(x, y).item()
        theirs = F.cross_entropy(hf(x).logits.reshape(-1, hf.config.vocab_size), y.reshape(-1)).item()
    return abs(ours - theirs)


def main():
    with open(HPARAMS_FILE) as f:
        hp = json.load(f)
    start_dir = resume_dir()
    state_file = os.path.join(start_dir, "training_state.json") if start_dir else STATE_FILE
    with open(state_file) as f:
        state = json.load(f)
    hp["train"].update(state.get("train", {}))  # a checkpoint's own settings (a changed --steps...)
    args = parse_args(hp)
    t = dict(hp["train"])
    for k in ("steps", "batch_size", "grad_accum", "lr", "min_lr", "warmup", "eval_every", "eval_iters", "save_every"):
        t[k] = getattr(args, k)
    rank, world, device = setup_distributed(args.device)
    with open(os.path.join(start_dir or MODEL_DIR, "config.json")) as f:
        cfg = json.load(f)
    cfg.setdefault("n_positions", cfg.get("n_ctx"))
    if cfg.get("layout", "gpt2") != "gpt2" or cfg.get("objective", "clm") != "clm":
        sys.exit("config.json: only GPT-2's pre-LayerNorm causal LM is supported by this script")
    block_size = cfg["n_positions"]

    torch.manual_seed(t["seed"] * 1000003 + state["step"] * 131 + rank)  # dropout masks: torch's own
    model = GPT(cfg).to(device)
    load_weights(model, os.path.join(start_dir or MODEL_DIR, "model.safetensors"))
    model.train()
    named = list(model.named_parameters())
    opt = AdamW(named, t)
    opt_file = os.path.join(start_dir, "optimizer.safetensors") if start_dir else OPTIMIZER_FILE
    if os.path.exists(opt_file):
        opt.load(opt_file, state["adam_t"])
    elif rank == 0:
        print(f"note: no {opt_file}; AdamW starts with zero moments", file=sys.stderr)
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else model

    with open(os.path.join(DATA_DIR, "meta.json")) as f:
        data_meta = json.load(f)
    train = read_tokens(os.path.join(DATA_DIR, "train.bin"), data_meta["dtype"])
    val = read_tokens(os.path.join(DATA_DIR, "val.bin"), data_meta["dtype"])
    if len(train) < block_size + 1:
        sys.exit(f"{DATA_DIR}/train.bin: {len(train)} tokens, fewer than one block ({block_size + 1})")

    os.makedirs(args.output_dir, exist_ok=True)
    metrics = os.path.join(args.output_dir, "metrics.jsonl")
    rng = Rng(state["rng"])
    step = state["step"]
    last = t["steps"] if args.stop_after is None else min(t["steps"], step + args.stop_after)
    rows = t["batch_size"]
    log(rank, {"type": "start", "step": step, "steps": t["steps"], "world_size": world, "device": str(device),
               "tokens_per_step": rows * t["grad_accum"] * world * block_size}, metrics)
    val_loss = state.get("val_loss")
    while step < last:
        t0 = time.time()
        lr = learning_rate(step, t)
        loss_sum = torch.zeros(1, device=device)
        for micro in range(t["grad_accum"]):
            offsets = draw_offsets(rng, len(train), block_size, rows * world)
            x, y = make_batch(train, offsets[rank * rows : (rank + 1) * rows], block_size, device)
            sync = world == 1 or micro == t["grad_accum"] - 1
            with contextlib.nullcontext() if sync else ddp.no_sync():
                loss = ddp(x, y)
                (loss / t["grad_accum"]).backward()
            loss_sum += loss.detach()
        # DDP averaged the gradients over the ranks; the loss is averaged the same way
        if world > 1:
            dist.all_reduce(loss_sum)
        train_loss = loss_sum.item() / (t["grad_accum"] * world)
        grad_norm = torch.sqrt(sum((p.grad.float() ** 2).sum() for _, p in named)).item()
        if not (math.isfinite(train_loss) and math.isfinite(grad_norm)):
            sys.exit(f"the loss or gradient became non-finite at step {step + 1}; lower --lr and --resume")
        clip = min(t["grad_clip"] / (grad_norm + 1e-6), 1.0) if t["grad_clip"] > 0 else 1.0
        opt.step(lr, clip)
        model.zero_grad(set_to_none=True)
        step += 1
        record = {"type": "step", "step": step, "loss": train_loss, "lr": lr, "grad_norm": grad_norm,
                  "ms": round((time.time() - t0) * 1000, 1)}
        end = step == last
        if len(val) > block_size and ((t["eval_every"] > 0 and step % t["eval_every"] == 0) or end):
            val_loss = evaluate(model, val, t, block_size, device) if rank == 0 else None
            record["val_loss"] = val_loss
        log(rank, record, metrics)
        if rank == 0 and (end or (t["save_every"] > 0 and step % t["save_every"] == 0)):
            saved = {"step": step, "rng": rng.s, "adam_t": opt.t, "train_loss": train_loss,
                     "val_loss": val_loss, "world_size": world, "train": t}
            where = save_checkpoint(args.output_dir, model, opt, cfg, saved, args.keep)
            log(rank, {"type": "checkpoint", "step": step, "path": where}, metrics)
            if end:
                try:
                    diff = hf_check(where, model, val if len(val) > block_size else train, block_size, device)
                except Exception as err:  # a transformers that cannot load it says so, nothing more
                    print(f"note: transformers could not load {where}: {err}", file=sys.stderr)
                    diff = None
                if diff is not None:
                    log(rank, {"type": "transformers-check", "loss_difference": diff}, metrics)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
`;
