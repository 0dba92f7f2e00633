"""Run directories for the commands: re-exports :mod:`nascli.rundir` (deterministic paths, atomic
artifacts, versioned checkpoints, the one-process lock, metrics, result.json) and the seeding helper."""
from nascli.rundir import (  # noqa: F401
    NON_SEMANTIC_KEYS,
    TEMP_PREFIX,
    TEMP_SUFFIX,
    RunDir,
    atomic_write_bytes,
    atomic_write_json,
    config_hash,
    git_revision,
    semantic_config,
)
from nascli.rng import seed_everything  # noqa: F401
