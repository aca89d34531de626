"""Fine-tuning workloads: SFT and GRPO with LoRA/QLoRA on Ray Train + DeepSpeed + TRL + PEFT.

Not registered as workloads yet; `sweeps list workloads` shows what is available.
"""
