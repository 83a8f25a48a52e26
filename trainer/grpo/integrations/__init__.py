"""Other trainers writing GRPO Studio run directories: `grpo.integrations.trl.attach(trainer, run_dir)` for a
live TRL `GRPOTrainer`, `python -m grpo import-trl` for a finished one (docs/run-directory.md, "Runs written
by TRL")."""
