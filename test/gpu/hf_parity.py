# Hugging Face transformers side of the engine's parity check (GPU host only; needs torch and
# transformers). Builds small random-initialised LlamaForCausalLM (GQA, llama3 rope scaling) and
# Qwen2ForCausalLM (QKV bias) models in f32, saves them with save_pretrained into $KVLAB_HF_DIR/<name>,
# and writes the logits of fixed token ids to $KVLAB_HF_DIR/<name>/expected.json.
# test/gpu/hf.test.ts then loads each folder with kvlab and compares (relative error <= 1e-4).
#   KVLAB_HF_DIR=/tmp/hf python3 test/gpu/hf_parity.py
import json, os, torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

out = os.environ.get("KVLAB_HF_DIR", "/tmp/kvlab-hf")
torch.manual_seed(0)
# Token ids as real checkpoints declare them (transformers' Qwen2Config leaves them unset).
common = dict(hidden_size=256, intermediate_size=688, num_hidden_layers=3, num_attention_heads=8,
              num_key_value_heads=2, vocab_size=1000, max_position_embeddings=4096, rms_norm_eps=1e-5,
              bos_token_id=1, eos_token_id=2)
models = {
    "llama-gqa": LlamaForCausalLM(LlamaConfig(**common, rope_theta=10000.0, tie_word_embeddings=False)),
    "llama3-scaled": LlamaForCausalLM(LlamaConfig(**common, rope_theta=500000.0, tie_word_embeddings=True,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 256})),
    "qwen2-bias": Qwen2ForCausalLM(Qwen2Config(**common, rope_theta=1000000.0, tie_word_embeddings=False)),
}
ids = [(i * 37 + 11) % 1000 for i in range(300)]
for name, model in models.items():
    model = model.float().eval()
    # transformers initialises norms to exactly 1: perturb them so a norm bug cannot hide
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n: p.mul_(1 + 0.1 * torch.rand_like(p))
    path = os.path.join(out, name)
    model.save_pretrained(path, safe_serialization=True)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    rows = [0, 1, 150, 299]
    json.dump({"tokens": ids, "rows": rows, "logits": [logits[r].tolist() for r in rows],
               "transformers": __import__("transformers").__version__, "torch": torch.__version__},
              open(os.path.join(path, "expected.json"), "w"))
    print(name, "saved", path, flush=True)
