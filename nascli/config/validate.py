"""Check a composed config against its command's :class:`~nascli.config.schema.Schema`.

Order: unknown keys in closed sections (nearest valid key named), then each value rule (on the
resolved value), then the outside checks. The first problem is raised as one line naming the key,
the bad value and what is allowed; nothing has been written at that point.
"""
from __future__ import annotations

import difflib
from functools import lru_cache
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nascli.config.checks import CHECKS
from nascli.config.schema import SCHEMAS, Schema
from nascli.errors import NasError
from nascli.paths import CONF_DIR

_ABSENT = object()


class ConfigError(NasError):
    """A config value or key that the schema does not allow."""


def show(value: Any) -> str:
    """A value as the user would type it after ``key=`` (strings quoted, so 'abc' reads as text)."""
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def nearest(word: str, candidates: list[str]) -> str | None:
    """The candidate closest to ``word`` (difflib), or None when none is close."""
    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_key_message(key: str, candidates: list[str], command: str) -> str:
    """``unknown key 'search.epochz' for nas search; did you mean search.epochs?`` (one line)."""
    parent, _, leaf = key.rpartition(".")
    prefix = f"{parent}." if parent else ""
    siblings_full = [c for c in candidates if c.startswith(prefix) and "." not in c[len(prefix):]]
    near = nearest(leaf, [c[len(prefix):] for c in siblings_full])
    if near is None and not siblings_full:  # the section itself is misspelled (serch.epochs)
        near_full = nearest(key, candidates)
        if near_full:
            return f"unknown key {key!r} for nas {command}; did you mean {near_full}?"
    if near is not None:
        return f"unknown key {key!r} for nas {command}; did you mean {prefix}{near}?"
    siblings = sorted({c[len(prefix):].split(".")[0] for c in candidates if c.startswith(prefix)})
    where = f" under {parent}" if parent else ""
    return f"unknown key {key!r} for nas {command}; valid keys{where}: {', '.join(siblings)}"


def config_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Every dotted key of ``cfg`` (mappings and leaves), without resolving values."""
    out = []
    for key in cfg.keys():
        full = f"{prefix}{key}"
        out.append(full)
        node = cfg._get_node(key)  # noqa: SLF001 - the raw node, so interpolations stay unresolved
        if isinstance(node, DictConfig) and not node._is_none() and not node._is_missing():  # noqa: SLF001
            out.extend(config_keys(node, f"{full}."))
    return out


def _select(cfg: DictConfig, key: str) -> Any:
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
    except OmegaConfBaseException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{key} cannot be resolved ({first})") from None
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def command_groups(command: str) -> list[str]:
    """The config groups in the defaults list of ``conf/<command>.yaml``."""
    defaults = OmegaConf.load(CONF_DIR / f"{command}.yaml").get("defaults", [])
    out = []
    for entry in defaults:
        if isinstance(entry, (dict, DictConfig)):
            out += [str(k).removeprefix("optional ").removeprefix("override ").strip() for k in entry]
    return sorted(g for g in out if not g.startswith("_"))


# Groups a command composes only so that a task can fill them: evaluate and benchmark hold method / optimizer /
# selection at null, and task=super_resolution sets its trilevel search method there. They are not the user's
# to choose on that command (nas evaluate trains a fixed arch; nas benchmark takes methods=[...]).
TASK_FILLED_GROUPS: dict[str, frozenset[str]] = {
    "evaluate": frozenset({"method", "optimizer", "selection"}),
    "benchmark": frozenset({"method", "optimizer", "selection"}),
}


def user_groups(command: str) -> list[str]:
    """The config groups a user may choose on ``nas <command>``: ``command_groups`` less ``TASK_FILLED_GROUPS``."""
    return [g for g in command_groups(command) if g not in TASK_FILLED_GROUPS.get(command, frozenset())]


@lru_cache(maxsize=None)
def shipped_keys(command: str) -> frozenset[str]:
    """Every dotted key that a config file shipped for ``command`` defines (``conf/<command>.yaml``, an
    option of one of its groups under the group's name, or at the top for ``# @package _global_``
    files), so a key added to a yaml is never refused for lack of a rule; only keys that no shipped
    file has (``+search.epochz=3``, ``+arch=x`` on search) are."""
    keys: set[str] = set()

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k != "defaults":
                    keys.add(f"{prefix}{k}")
                    walk(v, f"{prefix}{k}.")

    groups = command_groups(command)
    keys.update(groups)
    files = [(CONF_DIR / f"{command}.yaml", "")]
    files += [(p, f"{g}.") for g in groups for p in sorted((CONF_DIR / g).rglob("*.yaml"))]  # paper/*.yaml too
    for path, prefix in files:
        try:
            text = path.read_text()
            data = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
        except (OSError, OmegaConfBaseException):
            continue
        walk(data, "" if "@package _global_" in text else prefix)
    return frozenset(keys)


def check_keys(schema: Schema, cfg: DictConfig) -> None:
    """Refuse keys of a closed section that neither the schema nor any shipped config file names."""
    all_keys = [k for k in schema.rules] + list(schema.open)
    shipped = shipped_keys(schema.command)
    for section in schema.closed:
        node = cfg if not section else OmegaConf.select(cfg, section, default=None)
        if not isinstance(node, DictConfig):
            continue
        known = set(schema.known_keys(section))
        for key in node.keys():
            full = f"{section}.{key}" if section else str(key)
            if str(key) not in known and full not in shipped:
                raise ConfigError(unknown_key_message(full, all_keys, schema.command))


def check_value(schema: Schema, key: str, value: Any) -> None:
    """One key's rule (when the schema has one) on a resolved value."""
    rule = schema.rules.get(key)
    if rule is None or value is _ABSENT or rule.accepts(value):
        return
    hint = rule.hint(key, value)
    if hint:
        raise ConfigError(f"{key}={show(value)} {hint}")
    raise ConfigError(f"{key}={show(value)} is not allowed; expected {rule.allowed()}")


def check_values(schema: Schema, cfg: DictConfig) -> None:
    """Every rule of the schema on the value the config holds (keys absent from it are skipped)."""
    for key in schema.rules:
        check_value(schema, key, _select(cfg, key))


def validate_value(command: str, key: str, value: Any) -> None:
    """The rule of ``key`` on one value (each value of a ``-m`` sweep, without recomposing)."""
    schema = SCHEMAS.get(command)
    if schema is not None:
        check_value(schema, key, OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value)


def check_space_recipe(cfg: DictConfig) -> None:
    """A method whose yaml keeps per-space recipes (``method.space_defaults``, picked by ``${space.name}``, as
    drnas and gm_nas do) runs only on the spaces it has a recipe for; any other space is one line naming them
    (before an interpolation into the missing recipe fails)."""
    method = cfg.get("method") if isinstance(cfg, DictConfig) else None
    space = cfg.get("space") if isinstance(cfg, DictConfig) else None
    if not isinstance(method, DictConfig) or not isinstance(space, DictConfig):
        return
    if "space_defaults" not in method:
        return
    recipes = method._get_node("space_defaults")  # noqa: SLF001 - the raw node: recipes may interpolate
    if not isinstance(recipes, DictConfig) or recipes._is_none():  # noqa: SLF001
        return
    name = str(space.get("name"))
    if name not in recipes:
        raise ConfigError(f"method={method.get('name')} has no recipe for space={name}; spaces it runs on: "
                          f"{', '.join(str(k) for k in recipes.keys())}")


def validate_config(command: str, cfg: DictConfig, *, outside: bool = True) -> None:
    """Raise a one-line :class:`ConfigError` (or the check's own NasError) on the first problem.

    ``outside=False`` skips the checks that touch the file system (used while only composing).
    """
    schema = SCHEMAS.get(command)
    if schema is None:
        return
    check_keys(schema, cfg)
    check_space_recipe(cfg)
    check_values(schema, cfg)
    if outside:
        for name in schema.checks:
            CHECKS[name](cfg)
