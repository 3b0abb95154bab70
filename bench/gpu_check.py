"""GPU check: the trainer on CUDA with a randomly initialised Qwen2.5-0.5B-architecture model.

    python bench/gpu_check.py [--steps 4] [--prompts 8] [--group 8] [--new-tokens 256]

No weights can be fetched on the GPU machine, so the model is random (it never emits EOS: every
completion runs to the budget, the worst case for time) and the tokenizer is the byte-level test one.
HF rollout engine, bf16 autocast, gradient checkpointing, INTUITOR reward with the KL reference.
Prints one line per step, then one summary line (the first step is a warm-up, excluded).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from pipeline.config import TrainConfig, apply_override, build, to_dict
from pipeline.config.params import load_params
from pipeline.modeling.models import tiny_tokenizer
from pipeline.rl.trainer import Trainer
from pipeline.tasks.training import load_prompts


def qwen2_5_0_5b_config(eos: int) -> Qwen2Config:
    # Qwen/Qwen2.5-0.5B's config.json: 494M parameters, tied embeddings, GQA 14/2 heads.
    return Qwen2Config(
        vocab_size=151_936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=32_768,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )


def train_config(args: argparse.Namespace) -> TrainConfig:
    """INTUITOR as the committed params.yaml sets it up, read without Hydra or DVC (the GPU image has
    neither), at this check's size: arith prompts without a system prompt (the byte-level tokenizer's
    own template), HF rollouts in one batch per step, no resume, no checkpoint before the end, no
    tracking."""
    cuda = args.device == "cuda"
    tree = to_dict(load_params(Path(__file__).resolve().parents[1] / "params.yaml").train_config("intuitor"))
    overrides = {
        "model.system_prompt": None,
        "data.name": "arith",
        "data.train_size": args.prompts * args.steps,
        "data.test_size": 4,
        "algorithm.steps": args.steps,
        "algorithm.group_size": args.group,
        "algorithm.prompts_per_step": args.prompts,
        "algorithm.max_new_tokens": args.new_tokens,
        "algorithm.micro_batch_size": args.micro_batch,
        "algorithm.beta": 0.005,
        "algorithm.lr": 1e-6,
        "rollout.engine": "hf",
        "rollout.batch_size": args.prompts * args.group,
        "trainer.device": args.device,
        "trainer.output_dir": "/tmp/gpu_check",
        "trainer.resume": False,
        "trainer.checkpoint_every": 10_000,
        "trainer.mixed_precision": "bf16" if cuda else "no",
        "trainer.gradient_checkpointing": True,
        "tracking.backend": "null",
    }
    for key, value in overrides.items():
        apply_override(tree, key, value)
    return build(TrainConfig, tree)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of this script (no timings claimed)")
    args = ap.parse_args()
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("gpu_check: CUDA is not available here")
    print(f"device: {torch.cuda.get_device_name(0) if cuda else 'cpu'}; torch {torch.__version__}")
    print("vllm:", "installed" if importlib.util.find_spec("vllm") else "NOT installed (HF rollouts only)")

    tokenizer = tiny_tokenizer()
    with torch.device(args.device):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(qwen2_5_0_5b_config(tokenizer.eos_token_id)).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    n_params = sum(p.numel() for p in model.parameters())
    cfg = train_config(args)
    prompts = load_prompts(cfg.data, cfg.model.system_prompt)
    trainer = Trainer(cfg, model, tokenizer, prompts, show_progress=False)
    rows = []
    for step in range(args.steps):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        m = trainer.step(step)
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        # completion tokens trained per second of the update (policy forward + backward) pass
        train_tokens = args.prompts * args.group * m["completion/length_mean"]
        row = {
            "step_s": wall,
            "rollout_tok_s": m["throughput/rollout_tokens_per_s"],
            "train_tok_s": train_tokens / max(m["time/update_s"], 1e-9),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
        }
        rows.append(row)
        print(f"step {step}: " + ", ".join(f"{k}={v:.2f}" for k, v in row.items()), flush=True)
    timed = rows[1:] or rows
    med = {k: statistics.median(r[k] for r in timed) for k in timed[0]}
    print(
        f"SUMMARY gpu_check params={n_params / 1e6:.0f}M batch={args.prompts}x{args.group}x{args.new_tokens} "
        f"{'bf16' if cuda else 'fp32'}+grad_ckpt step_s={med['step_s']:.2f} "
        f"rollout_tok_s={med['rollout_tok_s']:.0f} "
        f"train_tok_s={med['train_tok_s']:.0f} peak_gib={max(r['peak_gib'] for r in rows):.1f}"
    )


if __name__ == "__main__":
    main()
