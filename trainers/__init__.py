"""Fine-tuning workloads: SFT and GRPO with LoRA/QLoRA on Ray Train + DeepSpeed + TRL + PEFT.

``trainers.workload`` is what the sweep core sees (entry points ``sft`` and ``grpo``);
``trainers.trainable`` is a trial's driver, ``trainers.worker``/``trainers.run`` what each
Ray Train worker runs. Scoring comes from ``evaluators``; of ``sweeps``, only its dependency-free
``sweeps.registry`` (how rewards are registered) is imported.
"""

from evaluators.quiet import quiet_bitsandbytes_import

# before anything here imports bitsandbytes (PEFT and TRL do), whose import logs a notice
quiet_bitsandbytes_import()
