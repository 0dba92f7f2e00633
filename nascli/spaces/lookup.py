"""Find an architecture's space from what a user types: an arch.json path, an NB201 string, DARTS Genotype
text or a published genotype name. Every registered space is asked to parse the text (the default space
first); the first that accepts it wins. Used by ``nas evaluate`` and by the CLI, which composes the arch's
space before Hydra runs so the user's ``space.*`` overrides apply to the right space."""
from __future__ import annotations

import json
from pathlib import Path

from nascli.errors import BadArchError
from nascli.spaces import get_space, space_names


def load_arch(text: str, default_space: str):
    """(space, arch) for ``text`` (module docstring); one-line BadArchError naming every space's reason."""
    text = str(text).strip()
    if text.endswith(".json"):
        path = Path(text)
        if not path.is_file():
            raise BadArchError(f"arch file {text} not found")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadArchError(f"arch file {text} is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("space") not in space_names():
            found = data.get("space") if isinstance(data, dict) else type(data).__name__
            raise BadArchError(f"arch file {text} names no known space (space={found!r}); valid spaces: "
                               f"{', '.join(space_names())}")
        space = get_space(str(data["space"]))
        return space, space.arch_from_json(data)
    names = [default_space] + [n for n in space_names() if n != default_space]
    errors = []
    for name in names:
        space = get_space(name)
        try:
            return space, space.parse_arch(text)
        except BadArchError as exc:
            errors.append(f"as {name}: {exc}")
    raise BadArchError(f"cannot read arch {text!r} ({'; '.join(errors)})")


def arch_space_name(text: str, default_space: str = "nb201") -> str:
    """The name of the space whose arch ``text`` is."""
    return load_arch(text, default_space)[0].name
