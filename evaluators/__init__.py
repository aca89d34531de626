"""The evaluate workload: models, KV-cache techniques, tasks, scoring, measurement."""

from evaluators.quiet import quiet_bitsandbytes_import

# before anything here imports bitsandbytes (through PEFT or transformers), whose import logs a notice
quiet_bitsandbytes_import()
