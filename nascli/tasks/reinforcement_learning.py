"""Reinforcement learning from pixels (``task=reinforcement_learning``): RL-DARTS (Miao et al., AutoML-Conf 2022).

A space's network is the image encoder of a PPO agent (Stable-Baselines3) that learns in a Gymnasium
environment; the "dataset" is an environment config (``conf/dataset/minigrid_*.yaml``: a ``family`` of
:data:`nascli.rl.envs.ENV_FAMILIES`). The search trains the supernet's weights and alpha jointly on the PPO
loss (alpha by its own Adam, :mod:`nascli.rl.agent`) and logs, per evaluation period, the episode returns, the
alpha entropy and the derived cell; ``nas evaluate`` trains the derived (or IMPALA baseline) encoder from
scratch with the same agent and reports ``mean_return`` (primary, higher is better) over
``protocol.final_eval_episodes`` evaluation episodes.

The encoder is a classification network of the space (``SearchSpace.tasks`` holds ``classification``: the
spaces never learn about RL) whose head outputs ``task.features_dim`` features. The task has no batches, loss
or splits: it runs its own loops (:meth:`driver`), so the supervised hooks below refuse in one line.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from omegaconf import OmegaConf

from nascli.errors import NasError
from nascli.tasks.base import TASKS, Criterion, Task

#: ``task.encoder`` values: the arch's network (``arch=``) or the IMPALA-CNN baseline (nascli/rl/encoder.py)
ENCODERS = ("network", "impala_baseline")


def _own_loop(what: str) -> NasError:
    return NasError(f"task=reinforcement_learning has no {what}: an agent learns from its environment through "
                    f"its own loop (nascli/rl)")


@TASKS.register("reinforcement_learning")
class ReinforcementLearningTask(Task):
    """Module docstring. Task options (``conf/task/reinforcement_learning.yaml``): ``features_dim``,
    ``encoder`` (network | impala_baseline), ``impala_channels``."""

    name = "reinforcement_learning"
    metric = "mean_return"
    higher_is_better = True
    metric_title = "mean episode return"
    #: the spaces whose networks this task uses as encoders (nascli/tasks/fit.py)
    space_task = "classification"
    selections = ("magnitude",)
    selections_why = ("the probing criteria score a supervised loss on fixed batches, and an RL search has "
                      "neither; the architecture is read from alpha")

    def __init__(self, cfg: Any = None):
        super().__init__(cfg)
        get = cfg.get if cfg is not None else (lambda k, d=None: d)
        self.features_dim = int(get("features_dim", 64))
        if self.features_dim < 1:
            raise NasError(f"task.features_dim={self.features_dim} must be a positive number of features")
        self.encoder = str(get("encoder", "network"))
        if self.encoder not in ENCODERS:
            raise NasError(f"task.encoder={self.encoder} is not an encoder; valid choices: {', '.join(ENCODERS)}")
        channels = get("impala_channels", [16, 32, 32])
        self.impala_channels = [int(c) for c in (OmegaConf.to_container(channels) if OmegaConf.is_config(channels)
                                                 else channels)]
        if not self.impala_channels or min(self.impala_channels) < 1:
            raise NasError(f"task.impala_channels={self.impala_channels} must list positive channel counts")

    # ------------------------------------------------------------------ environments
    def dataset_names(self) -> list[str]:
        """The dataset configs of the package that name an environment family (``family:``)."""
        from nascli.paths import CONF_DIR
        from nascli.rl.envs import ENV_FAMILIES

        names = []
        for path in sorted((CONF_DIR / "dataset").glob("*.yaml")):
            node = OmegaConf.load(path)
            if str(node.get("family", "")) in ENV_FAMILIES.names():
                names.append(str(node.get("name", path.stem)))
        return names

    def dataset_info(self, dataset_cfg: Any) -> Any:
        """``name``, ``channels``, ``image_size``, ``num_actions`` of one environment (built, not stepped)."""
        from nascli.rl.envs import env_facts

        if dataset_cfg.get("family") is None:
            raise NasError(f"dataset={dataset_cfg.name} is not an environment; task=reinforcement_learning "
                           f"datasets: {', '.join(self.dataset_names())}")
        return SimpleNamespace(name=str(dataset_cfg.name), **env_facts(dataset_cfg))

    def head_kwargs(self, info: Any) -> dict[str, Any]:
        """The classification head sized to the encoder's features (module docstring)."""
        return {"num_classes": self.features_dim}

    def input_shape(self, info: Any) -> tuple[int, ...]:
        return (1, info.channels, info.image_size, info.image_size)

    # ------------------------------------------------------------------ the supervised hooks: refused
    @property
    def criterion(self) -> Criterion:
        raise _own_loop("per-batch loss")

    def search_data(self, dataset_cfg: Any) -> tuple[Any, Any, Any]:
        raise _own_loop("dataset splits")

    def search_stream(self, split: Any, info: Any, batch_size: int, *, seed: int, mode: str = "shuffle",
                      cutout: int = 0) -> Any:
        raise _own_loop("batch stream")

    def eval_batches(self, split: Any, info: Any, batch_size: int):
        raise _own_loop("evaluation batches")

    def eval_data(self, dataset_cfg: Any) -> tuple[Any, Any, Any]:
        raise _own_loop("dataset splits")

    def training(self, protocol: Any, make_stream: Any = None):
        raise _own_loop("supervised training loop")

    # ------------------------------------------------------------------ its own loops
    def driver(self) -> Any:
        from nascli.rl.driver import RLDriver

        return RLDriver()
