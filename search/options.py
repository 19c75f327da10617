"""Options declared once: a field of a frozen dataclass carries its flag, help and rule, and the
command line's flags, the Python API's checks and every message that names an option derive
from that one declaration.

Who uses what: ``RunOptions`` (``search/driver/plan.py``), ``DataOptions``
(``search/data/data_options.py``) and ``ServeSettings`` (``search/serve/settings.py``) declare their
fields with :func:`option`; the command line builds its parsers with :func:`add_flags` and
reads them back with :func:`given`; the API checks its arguments with :func:`check_given`; a
message names an option with :func:`named` (the flag on the command line, the argument in the
API).

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Demo:
...     port: int = option(8000, "--port", "TCP port", rule=COUNT, parse=int)
>>> named(Demo, "port", api=False), named(Demo, "port", api=True)
('--port', 'port')
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from search.arguments import COUNT, Rule, check

__all__ = ["COUNT", "Opt", "add_flags", "check_given", "declared", "given", "named", "option"]

KEY = "option"  # the dataclass field's metadata key


@dataclass(frozen=True)
class Opt:
    """One option as the command line and the API know it.

    Args:
        flag: The command line's flag (``--split-seed``); ``""``: positional, by ``arg``.
        help: One line for ``--help``.
        rule: The API's type and range check (``search.arguments``), or None.
        parse: The command line's converter (``int``, ``float``), or None for text.
        action: ``store_true`` or ``append`` (repeatable), or None.
        nargs: ``+`` for a flag followed by one or more values, or None.
        metavar: What ``--help`` shows for the value.
        aliases: Other flags for the same option (older names).
        arg: The API's argument and the parsed namespace's name, when not the field's
            (``split_seed`` for the field ``seed``).
        choices: The values the command line accepts, or None for any.
        cli: Whether the command line has it (some are the API's only).
        api: How a message names it to the API's caller, when not ``arg`` (``out=``).
    """

    flag: str
    help: str
    rule: Rule | None = None
    parse: Callable[[str], Any] | None = None
    action: str | None = None
    metavar: str | None = None
    aliases: tuple[str, ...] = ()
    arg: str | None = None
    choices: tuple[str, ...] | None = None
    cli: bool = True
    api: str | None = None
    nargs: str | None = None  # "+": one or more values after the flag


def option(default: Any = None, flag: str = "", help: str = "", **spec: Any) -> Any:
    """A dataclass field declared as an option (see :class:`Opt` for ``spec``)."""
    opt = Opt(flag, help, **spec)
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata={KEY: opt})
    return dataclasses.field(default=default, metadata={KEY: opt})


def declared(cls: type) -> dict[str, Opt]:
    """Field name -> its :class:`Opt`, in declaration order, for every declared field."""
    return {f.name: f.metadata[KEY] for f in dataclasses.fields(cls) if KEY in f.metadata}


def arg_of(name: str, opt: Opt) -> str:
    """The name an option goes by in the API and in a parsed namespace."""
    return opt.arg or name


def named(cls: type, name: str, api: bool) -> str:
    """How a message names field ``name`` of ``cls``: its flag on the command line, its
    argument (``out=``-style for a path, ``resume=True`` for a switch) in the API."""
    opt = declared(cls)[name]
    if not api:
        return opt.flag or arg_of(name, opt).upper()
    return opt.api or arg_of(name, opt) + ("=True" if opt.action == "store_true" else "")


def add_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    only: tuple[str, ...] | None = None,
    skip: tuple[str, ...] = (),
    help_default: bool = False,
    aliases: Mapping[str, tuple[str, ...]] | None = None,
) -> None:
    """Add ``cls``'s declared options to ``parser``, each by its flag; an option not given on
    the command line reads back as None (a switch as False), so what a space or a default
    says stands unless a flag overrides it. ``help_default``: the flag's default is the
    field's (for options with no other source), shown in ``--help``. ``aliases``: more flags
    for some options on this parser only (a command's older names)."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for name, opt in declared(cls).items():
        if not opt.cli or name in skip or (only is not None and name not in only):
            continue
        kwargs: dict[str, Any] = {"help": opt.help}
        if opt.action is not None:
            kwargs["action"] = opt.action
        if opt.parse is not None:
            kwargs["type"] = opt.parse
        if opt.metavar is not None:
            kwargs["metavar"] = opt.metavar
        elif opt.flag and opt.action is None and opt.choices is None:  # named after the flag
            kwargs["metavar"] = opt.flag.lstrip("-").upper().replace("-", "_")
        if opt.choices is not None:
            kwargs["choices"] = opt.choices
        if opt.nargs is not None:
            kwargs["nargs"] = opt.nargs
        if help_default and opt.action != "append" and defaults[name] is not dataclasses.MISSING:
            kwargs["default"] = defaults[name]
        if not opt.flag:  # positional
            parser.add_argument(arg_of(name, opt), **kwargs)
            continue
        kwargs["dest"] = arg_of(name, opt)
        if opt.action == "append":
            kwargs["default"] = None
        parser.add_argument(opt.flag, *opt.aliases, *(aliases or {}).get(name, ()), **kwargs)


def given(args: argparse.Namespace | Mapping[str, Any], cls: type, by_arg: bool = False) -> dict[str, Any]:
    """Field name (or with ``by_arg`` the argument's name) -> value, for each of ``cls``'s
    options present in ``args`` (a parsed namespace, or the API's keyword arguments by their
    argument names)."""
    found = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    return {
        arg_of(name, opt) if by_arg else name: found[arg_of(name, opt)]
        for name, opt in declared(cls).items()
        if arg_of(name, opt) in found
    }


def check_given(caller: str, cls: type, values: Mapping[str, Any]) -> None:
    """The API's arguments (by their names) against each declared rule.

    Raises:
        UserError: ``caller: name must be <what>, got <value>``, the first that does not hold.
    """
    rules = {arg_of(n, o): o.rule for n, o in declared(cls).items() if o.rule is not None}
    check(caller, **{k: (v, rules[k]) for k, v in values.items() if k in rules})


def unknown(cls: type, names: Any, also: tuple[str, ...] = ()) -> list[str]:
    """The names among ``names`` that are none of ``cls``'s options' arguments (nor ``also``)."""
    known = {arg_of(n, o) for n, o in declared(cls).items()} | set(also)
    return sorted(set(names) - known)


def as_argument(message: str, *classes: type) -> str:
    """``message`` as the API's caller reads it: a leading flag of one of ``classes``' options
    (``--address ray://x: cannot connect``) named as the API names it (``address ray://x: ...``).
    Messages below the API start with the option's flag; the API renames it here, once."""
    if not message.startswith("--"):
        return message
    flag, rest = message, ""
    for i, ch in enumerate(message):
        if not (ch.isalnum() or ch == "-"):
            flag, rest = message[:i], message[i:]
            break
    for cls in classes:
        for name, opt in declared(cls).items():
            if opt.flag == flag:
                return named(cls, name, api=True) + rest
    return message
