"""Validation of what a user gives a command, before anything is written.

* :mod:`nascli.config.rules`: what one key accepts (an integer >= 1, one of a few words, a list...);
* :mod:`nascli.config.schema`: one declarative table of rules per command;
* :mod:`nascli.config.checks`: checks outside the config (output folder, arch files, run folders);
* :mod:`nascli.config.validate`: a composed config against its schema (one-line errors);
* :mod:`nascli.config.preflight`: the command line before Hydra runs (flags, keys, sweeps, presets).
"""
from nascli.config.preflight import preflight
from nascli.config.validate import validate_config

__all__ = ["preflight", "validate_config"]
