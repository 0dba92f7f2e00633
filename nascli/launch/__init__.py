"""Scale-out through Hydra's launchers: launcher presets (``conf/hydra/launcher/``), the optional
plugin packages behind them, and the GPU pool that spreads a local sweep over the visible GPUs.

Importing this package registers the ``nas.visible_gpus`` OmegaConf resolver used by the presets.
"""
from nascli.launch.plugins import check_launcher, launcher_choices, register_resolvers

register_resolvers()

__all__ = ["check_launcher", "launcher_choices", "register_resolvers"]
