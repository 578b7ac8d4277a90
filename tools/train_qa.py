#!/usr/bin/env python3
"""Train kvlab's small QA model on the multi-document QA prompts of datasets/multidoc-qa.

Input: segment JSONL written by `datasets/multidoc-qa/make.ts train|prompts` (one source of truth for
the prompt format, src/eval/qa/prompt.ts). Each segment is tokenized on its own, without special
tokens, and the sequence is
    [BOS] prefix chunk_1 ... chunk_n query answer [EOS]
exactly as kvlab's harness builds it.

Steps: (1) a byte-level BPE tokenizer (Hugging Face `tokenizers`) trained on the first
--tokenizer-sample training prompts; (2) a LlamaForCausalLM (GQA, RoPE, tied embeddings) trained
with AdamW; loss = mean next-token loss over the whole sequence + --answer-weight x mean loss over the
answer tokens and EOS (the sequence loss gives a dense signal that teaches copying names between
chunks; the answer term focuses the model on the task); (3) the model saved in bf16 with
save_pretrained, reloaded unchanged by transformers and compared with the trained weights; (4)
held-out exact match per question kind, greedy decoding after a full prefill, in float32 with the
bf16-rounded weights (what kvlab's CPU path computes). Everything is seeded (--seed): data order,
initialisation, tokenizer sample. With --budget-seconds the run stops when the time is up and the
learning-rate schedule follows elapsed time; the log gives the step count: pass it as --steps to
repeat the run's length on any machine (the schedule then follows steps). With --init DIR training
continues from a saved model and its tokenizer (fresh optimizer state, a new warm-up).

Mixed data: concatenate make.ts train files of several formats (e.g. with and without --chunks or
--ref-mix) into one --train file; give --heldout once per held-out set (TAG=FILE) to get the
exact match per set and kind. Further questions of a training example that would end past
--max-pos are left off (logged); the example's first question always stays.

Writes to --out: config.json, model.safetensors, tokenizer.json, tokenizer_config.json, train.log,
parity.json (held-out prompts' token ids, greedy answers and first-answer-token logits, for kvlab's
own parity test).
"""
import argparse
import json
import math
import os
import random
import re
import string
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

PAD, BOS, EOS = "<pad>", "<s>", "</s>"


def log(msg):
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    if LOG_FILE[0] is not None:
        LOG_FILE[0].write(line + "\n")
        LOG_FILE[0].flush()


LOG_FILE = [None]


def read_segments(path, limit=None):
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if limit is not None and len(out) >= limit:
                break
            line = line.strip()
            if not line:
                continue
            try:
                d = json.loads(line)
                assert isinstance(d["chunks"], list) and d["chunks"] and isinstance(d["query"], str)
            except Exception as e:  # a malformed line is an error, never skipped
                sys.exit(f"{path}:{i + 1}: malformed segment line ({e})")
            out.append(d)
    return out


def train_tokenizer(examples, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False)

    def texts():
        for d in examples:
            yield d["prefix"]
            yield from d["chunks"]
            yield d["query"]
            yield d["answer"]

    tok.train_from_iterator(texts(), trainer=trainer)
    assert tok.token_to_id(PAD) == 0 and tok.token_to_id(BOS) == 1 and tok.token_to_id(EOS) == 2
    return tok


def encode_all(tok, examples, extra=False, max_len=None):
    """Per example: (ids int32 array, [start, end) ranges of answer tokens + EOS). The context is
    [BOS] prefix chunks; then the question and answer+EOS; with `extra`, the example's further
    questions follow, each as query answer EOS. With `max_len`, trailing further questions that
    would end past max_len tokens are left off (the first question is always kept)."""
    segs, owner = [], []
    for d in examples:
        qa = [(d["query"], d["answer"])] + ([(e["query"], e["answer"]) for e in d.get("extra", [])] if extra else [])
        parts = [d["prefix"], *d["chunks"]] + [x for pair in qa for x in pair]
        segs.extend(parts)
        owner.append((len(parts), len(qa)))
    enc = tok.encode_batch(segs, add_special_tokens=False)
    out, k = [], 0
    for n, nq in owner:
        parts = [e.ids for e in enc[k:k + n]]
        k += n
        ids = [1] + [t for p in parts[:n - 2 * nq] for t in p]
        spans = []
        for j in range(nq):
            ids += parts[n - 2 * nq + 2 * j]
            a = len(ids)
            ids += parts[n - 2 * nq + 2 * j + 1] + [2]
            spans.append((a, len(ids)))
        if max_len is not None and len(ids) > max_len:
            keep = [sp for j, sp in enumerate(spans) if j == 0 or sp[1] <= max_len]
            ids = ids[:keep[-1][1]]
            spans = keep
        out.append((np.array(ids, dtype=np.int32), spans))
    return out


def make_model(args, vocab):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=args.dim, intermediate_size=args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, num_key_value_heads=args.kv_heads, max_position_embeddings=args.max_pos,
        rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        attention_bias=False, mlp_bias=False, hidden_act="silu", initializer_range=0.02)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(args.seed)
    return LlamaForCausalLM(cfg)


def batches(data, batch, seed):
    """Endless seeded shuffles of the training set (epoch after epoch)."""
    rng = np.random.RandomState(seed)
    epoch = 0
    while True:
        order = rng.permutation(len(data))
        for s in range(0, len(order) - batch + 1, batch):
            yield epoch, [data[j] for j in order[s:s + batch]]
        epoch += 1


def collate(items, device):
    L = max(len(ids) for ids, _ in items)
    x = np.zeros((len(items), L), dtype=np.int64)
    ans = np.zeros((len(items), L), dtype=bool)
    for i, (ids, spans) in enumerate(items):
        x[i, :len(ids)] = ids
        for a, b in spans:
            ans[i, a:b] = True  # positions whose token is an answer token or EOS
    x = torch.from_numpy(x).to(device, non_blocking=True)
    ans = torch.from_numpy(ans).to(device, non_blocking=True)
    return x, ans


def loss_fn(model, x, ans, answer_weight):
    with torch.autocast("cuda" if x.is_cuda else "cpu", dtype=torch.bfloat16):
        logits = model(input_ids=x, use_cache=False).logits
    logits = logits[:, :-1].float()
    tgt = x[:, 1:]
    mask = (tgt != 0)
    amask = ans[:, 1:]
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="none").view_as(tgt)
    seq = (ce * mask).sum() / mask.sum()
    a = (ce * amask).sum() / amask.sum()
    return seq + answer_weight * a, seq.detach(), a.detach()


def normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


@torch.no_grad()
def greedy(model, ids, max_new=12):
    """Greedy answer tokens after a full prefill of `ids` (stops at EOS)."""
    dev = next(model.parameters()).device
    x = torch.tensor([ids], device=dev)
    out = model(input_ids=x, use_cache=True)
    past, logits = out.past_key_values, out.logits[0, -1].float()
    first = logits.clone()
    toks = []
    for _ in range(max_new):
        t = int(torch.argmax(logits))
        if t == 2:
            break
        toks.append(t)
        out = model(input_ids=torch.tensor([[t]], device=dev), past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[0, -1].float()
    return toks, first


def evaluate(model, tok, heldout, n_parity=24):
    """Exact match per kind (LongBench normalisation), and parity records for kvlab. Prompts read
    from several --heldout files are counted per file and kind ("<tag>/<kind>")."""
    model.eval()
    enc = encode_all(tok, heldout)
    per = {}
    parity = []
    for i, (d, (ids, spans)) in enumerate(zip(heldout, enc)):
        a = spans[0][0]
        toks, first = greedy(model, ids[:a].tolist())
        pred = tok.decode(toks)
        em = float(normalize(pred) in {normalize(r) for r in d["answers"]})
        k = per.setdefault(f'{d["_set"]}/{d["kind"]}' if "_set" in d else d["kind"], [0, 0])
        k[0] += em
        k[1] += 1
        if i < n_parity or (i % 50 == 0):
            top = torch.topk(first, 5)
            parity.append({"id": d["id"], "kind": d["kind"], "promptIds": ids[:a].tolist(), "answerIds": toks,
                           "prediction": pred, "em": em, "firstLogitsTop5": [[int(j), float(v)] for v, j in zip(top.values, top.indices)]})
    model.train()
    return {k: v[0] / v[1] for k, v in per.items()}, {k: v[1] for k, v in per.items()}, parity


def bf16_rounded_copy(model):
    """f32 copy whose parameters are rounded to bf16 (buffers such as RoPE's inv_freq stay exact)."""
    import copy
    m = copy.deepcopy(model)
    with torch.no_grad():
        for p in m.parameters():
            p.data = p.data.to(torch.bfloat16).to(torch.float32)
    m.eval()
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--heldout", required=True, action="append",
                    help="held-out prompt file; repeat for several sets, each as TAG=FILE or FILE (tag: the file name "
                         "without .jsonl), then EM is reported per tag and kind")
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=None, help="use the first N training prompts")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--tokenizer-sample", type=int, default=40000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=704)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--max-pos", type=int, default=512)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--answer-weight", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--budget-seconds", type=float, default=None)
    ap.add_argument("--eval-every", type=int, default=0, help="quick held-out EM every N steps (0: only at the end)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default=None, help="continue training this saved model (its tokenizer is kept)")
    args = ap.parse_args()
    if args.steps is None and args.budget_seconds is None:
        sys.exit("give --steps or --budget-seconds")

    os.makedirs(args.out, exist_ok=True)
    LOG_FILE[0] = open(os.path.join(args.out, "train.log"), "w")
    log("command: python3 " + " ".join(sys.argv))
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        log(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    import tokenizers
    import transformers
    log(f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}")

    t0 = time.time()
    train = read_segments(args.train, args.limit)
    heldout = []
    for h in args.heldout:
        tag, path = h.split("=", 1) if "=" in h else (os.path.basename(h).removesuffix(".jsonl"), h)
        part = read_segments(path)
        if len(args.heldout) > 1:
            for d in part:
                d["_set"] = tag
        heldout += part
    log(f"read {len(train)} training prompts, {len(heldout)} held-out prompts ({time.time() - t0:.1f} s)")

    if args.init:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(os.path.join(args.init, "tokenizer.json"))
        log(f"continuing from {args.init} (its tokenizer and weights)")
    else:
        tok = train_tokenizer(train[:args.tokenizer_sample], args.vocab)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "add_bos_token": False, "add_eos_token": False,
                   "clean_up_tokenization_spaces": False, "model_max_length": args.max_pos,
                   "tokenizer_class": "PreTrainedTokenizerFast"}, f, indent=1)
    vocab = tok.get_vocab_size()
    t1 = time.time()
    data = encode_all(tok, train, extra=True, max_len=args.max_pos)
    lens = np.array([len(ids) for ids, _ in data])
    nqa = np.array([len(sp) for _, sp in data])
    log(f"tokenizer: {vocab} tokens; encoded in {time.time() - t1:.1f} s; sequence length mean {lens.mean():.1f}, "
        f"max {lens.max()}, tokens {lens.sum()}; questions per sequence mean {nqa.mean():.2f}")
    n_full = sum(1 + len(d.get("extra", [])) for d in train)
    if nqa.sum() < n_full:
        log(f"left off {n_full - nqa.sum()} of {n_full} questions (further questions past --max-pos {args.max_pos})")
    if lens.max() > args.max_pos:
        sys.exit(f"a training sequence has {lens.max()} tokens, more than --max-pos {args.max_pos}")

    if args.init:
        from transformers import LlamaForCausalLM
        model = LlamaForCausalLM.from_pretrained(args.init, dtype=torch.float32).to(dev)
        model.config._attn_implementation = "sdpa"
    else:
        model = make_model(args, vocab).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params} parameters ({n_params * 2 / 1e6:.1f} MB in bf16), config {model.config.to_dict().get('num_hidden_layers')} layers")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=dev.type == "cuda")
    steps = args.steps
    it = batches(data, args.batch, args.seed)

    def lr_at(s, progress):
        """Linear warm-up over --warmup steps, then cosine to 10% by the end of the run."""
        if s < args.warmup:
            return args.lr * (s + 1) / args.warmup
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    def progress(s):
        # With --steps the schedule runs on steps; with --budget-seconds on elapsed time.
        return s / steps if steps is not None else (time.time() - t_train) / args.budget_seconds

    model.train()
    t_train = time.time()
    s = 0
    tokens_seen = 0
    sums = [0.0, 0.0, 0]
    while (s < steps) if steps is not None else (time.time() - t_train < args.budget_seconds):
        epoch, items = next(it)
        x, ans = collate(items, dev)
        lr = lr_at(s, progress(s))
        for g in opt.param_groups:
            g["lr"] = lr
        loss, seq, a = loss_fn(model, x, ans, args.answer_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens_seen += sum(len(ids) for ids, _ in items)  # counted on the host: no device sync
        s += 1
        if s % 10 == 0:
            sums[0] += float(seq)
            sums[1] += float(a)
            sums[2] += 1
        if s % 100 == 0:
            el = time.time() - t_train
            log(f"step {s} epoch {epoch} lr {lr:.2e} loss(seq) {sums[0] / max(sums[2], 1):.4f} "
                f"loss(answer) {sums[1] / max(sums[2], 1):.4f} tok/s {tokens_seen / el:.0f} elapsed {el:.0f} s")
            sums = [0.0, 0.0, 0]
        if args.eval_every and s % args.eval_every == 0:
            em, _, _ = evaluate(model, tok, heldout[::10], n_parity=0)
            log(f"step {s} quick held-out EM (every 10th prompt): " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(em.items())))
    log(f"trained {s} steps in {time.time() - t_train:.0f} s ({tokens_seen} tokens)")

    # Save first, so a failure after this point still leaves the model.
    model.eval()
    torch.backends.cuda.matmul.allow_tf32 = False  # full f32 from here: parity and evaluation
    import copy
    m16 = copy.deepcopy(model).to(torch.bfloat16)
    m16.save_pretrained(args.out)
    gc_path = os.path.join(args.out, "generation_config.json")
    if os.path.exists(gc_path):
        os.remove(gc_path)
    log(f"saved {sorted(os.listdir(args.out))}")

    ref = bf16_rounded_copy(model)
    try:
        from transformers import LlamaForCausalLM
        again = LlamaForCausalLM.from_pretrained(args.out, dtype=torch.float32).to(dev).eval()
        ids, spans = encode_all(tok, heldout[:4])[0]
        a = spans[0][0]
        x = torch.tensor([ids[:a].tolist()], device=dev)
        with torch.no_grad():
            l1 = ref(input_ids=x).logits.float()
            l2 = again(input_ids=x).logits.float()
        rel = float((l1 - l2).abs().max() / l1.abs().max())
        log(f"transformers reload parity (LlamaForCausalLM.from_pretrained, f32): max relative logit error {rel:.2e}")
    except Exception as e:
        log(f"transformers reload parity FAILED: {type(e).__name__}: {e}")

    em, counts, parity = evaluate(ref, tok, heldout)
    log("held-out exact match (full prefill, greedy, f32 with bf16 weights): " +
        ", ".join(f"{k} {v:.3f} (n={counts[k]})" for k, v in sorted(em.items())))
    with open(os.path.join(args.out, "parity.json"), "w") as f:
        json.dump({"emByKind": em, "counts": counts, "records": parity}, f)
    log("done")


if __name__ == "__main__":
    main()
