"""GRPO Studio's trainer: Group Relative Policy Optimization (DeepSeekMath §4) in plain PyTorch."""

__version__ = "0.1.0"
