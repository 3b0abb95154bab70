"""Typed config: the sections (`sections`), how a mapping becomes one (`build`), reading params.yaml
(`params`) and composing conf/ into it (`compose`). Import the sections and helpers from here."""

from pipeline.config.build import (
    ConfigError,
    affects_trajectory,
    apply_override,
    build,
    out_of_bounds,
    setting,
    to_dict,
)
from pipeline.config.sections import (
    AlgorithmConfig,
    BenchmarkConfig,
    DataConfig,
    ExperimentConfig,
    JudgeConfig,
    MethodConfig,
    ModelConfig,
    PipelineConfig,
    RewardSpec,
    RolloutConfig,
    SamplingConfig,
    TrackingConfig,
    TrainConfig,
    TrainerConfig,
)

__all__ = [
    "AlgorithmConfig",
    "BenchmarkConfig",
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "JudgeConfig",
    "MethodConfig",
    "ModelConfig",
    "PipelineConfig",
    "RewardSpec",
    "RolloutConfig",
    "SamplingConfig",
    "TrackingConfig",
    "TrainConfig",
    "TrainerConfig",
    "affects_trajectory",
    "apply_override",
    "build",
    "out_of_bounds",
    "setting",
    "to_dict",
]
