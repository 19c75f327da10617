"""Templates: how a record (a JSON object, a table row) becomes the text an encoder embeds.

A template is a format string over the record's fields: ``{question}`` is the field as text,
``{options:lettered}`` a list field as lettered lines (``A. first``, ``B. second``, ...; a JSON
text of a list works too). The built-in mmlu-pro set was embedded with
``{question}\\n{options:lettered}``. Without a template, a source's text is its first field of
``question``, ``query``, ``prompt``, ``text``, as given.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from typing import Any

from search.errors import DataError

TEXT_FIELDS = ("question", "query", "prompt", "text")
FORMATS = ("", "lettered")
LETTERS = string.ascii_uppercase


class Template:
    """A checked template.

    Args:
        spec: The format string, e.g. ``"{question}\\n{options:lettered}"``.

    Raises:
        DataError: On a malformed spec, a field that is not a name, or an unknown format.
    """

    def __init__(self, spec: str) -> None:
        if not isinstance(spec, str) or not spec:
            raise DataError(f"template {spec!r}: give a format string such as '{{question}}'")
        try:
            parts = list(string.Formatter().parse(spec))
        except ValueError as exc:
            raise DataError(f"template {spec!r}: {exc}") from exc
        fields: list[str] = []
        for _, name, fmt, conversion in parts:
            if name is None:
                continue
            if not name.isidentifier() or conversion or (fmt or "") not in FORMATS:
                raise DataError(
                    f"template {spec!r}: {{{name}{'!' + conversion if conversion else ''}"
                    f"{':' + fmt if fmt else ''}}} is not a field; write {{name}} or {{name:lettered}}"
                )
            fields.append(name)
        if not fields:
            raise DataError(f"template {spec!r}: names no field; e.g. '{{question}}'")
        self.spec = spec
        self.fields = list(dict.fromkeys(fields))

    def render(self, record: Mapping[str, Any], where: str) -> str:
        """The text of one record.

        Raises:
            DataError: A field the template names is missing, or a lettered one is no list.
        """
        out: list[str] = []
        for literal, name, fmt, _ in string.Formatter().parse(self.spec):
            out.append(literal)
            if name is None:
                continue
            if name not in record or record[name] is None:
                raise DataError(f"{where}: no {name!r} field, which the template {self.spec!r} uses")
            value = record[name]
            out.append(_lettered(value, name, where) if fmt == "lettered" else _text(value))
        return "".join(out)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(self.spec)

    def __repr__(self) -> str:
        return f"Template({self.spec!r})"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _lettered(value: Any, name: str, where: str) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if not isinstance(value, list):
        raise DataError(f"{where}: {name!r} is {type(value).__name__}, not a list to letter")
    if len(value) > len(LETTERS):
        raise DataError(f"{where}: {name!r} has {len(value)} options; lettered lines go to Z (26)")
    return "\n".join(f"{LETTERS[i]}. {_text(v)}" for i, v in enumerate(value))


def default_template(fields: list[str] | set[str] | tuple[str, ...]) -> Template | None:
    """``{<first text field present>}``, or None when the source has none of them."""
    name = next((f for f in TEXT_FIELDS if f in fields), None)
    return Template(f"{{{name}}}") if name else None
