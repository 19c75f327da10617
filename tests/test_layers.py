"""The layers of the house, listed once, top to bottom: a module may import its own layer and
any layer below it, never one above. Private names (``_x``) are not imported across modules.

Run alone: ``pytest tests/test_layers.py``; it reads the source, imports nothing of it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Top to bottom. A module belongs to the first entry that is it or a package above it.
LAYERS: list[tuple[str, ...]] = [
    ("search.__main__", "search.cli"),  # the command line: parse, call, print, exit code
    ("search", "search.api"),  # the Python API (``search.run``, ``search.train``)
    ("search.serve",),  # a router behind HTTP: the routing API and the routing proxy
    ("search.driver",),  # Ray, the Tuner, the study as Tune's searcher and scheduler
    (  # a saved router in use: texts or embeddings in, LLM names out; new LLMs in and out
        "search.routing.router",
        "search.routing.onboard",
        "search.routing.suggest",
    ),
    ("search.results",),  # what a run leaves: its records, exports, tables, report
    ("search.study",),  # the study: storage, journal, lock, pruners, views, objectives
    ("search.trial",),  # one Tune trial: the trainable, packs, the training loop
    ("search.space",),  # YAML -> typed Space -> distributions -> trial configs
    ("search.routing",),  # a trained router's offsets, logits and decisions over data
    ("search.data",),  # RouterData and its sources
    ("search.metrics",),  # pure functions over scores, labels and masks
    (  # the ground floor: shared by every layer above
        "search.trial.protocol",  # the trainable's typed messages to the driver
        "search.trial.fidelity",
        "search.trial.train_config",
        "search.files",  # run-dir names, atomic writes, path checks, remote storage, parsing
        "search.limits",
        "search.deadline",
        "search.redact",
        "search.log",
        "search.options",  # options declared once: flags, API checks and messages derive
        "search.arguments",
        "search.errors",
    ),
    ("router_models",),  # models, packing, checkpoints, route(): knows nothing of search
]


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (length of the matched prefix, layer)
    for i, names in enumerate(LAYERS):
        for name in names:
            if module == name or module.startswith(name + "."):
                if best is None or len(name) > best[0]:
                    best = (len(name), i)
    return None if best is None else best[1]


def modules() -> dict[str, Path]:
    out = {}
    for pkg in ("search", "router_models"):
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imports(path: Path, known: set[str]) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names taken from it) for each import of our own modules."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                # ``from search import metrics`` imports the module search.metrics
                found.append((node.lineno, sub, []) if sub in known else (node.lineno, node.module, [a.name]))
    return [f for f in found if f[1].split(".")[0] in ("search", "router_models")]


def test_every_module_has_a_layer():
    missing = [m for m in modules() if layer_of(m) is None]
    assert not missing, f"modules in no layer (add them to LAYERS): {missing}"


def test_no_import_runs_up_a_layer():
    mods = modules()
    upward = []
    for mod, path in mods.items():
        here = layer_of(mod)
        for line, target, _ in imports(path, set(mods)):
            there = layer_of(target)
            assert there is not None, f"{path}:{line}: {target} is in no layer"
            if there < here:
                upward.append(f"{path.relative_to(ROOT)}:{line}: {mod} imports {target}")
    assert not upward, "imports that run up a layer:\n" + "\n".join(upward)


def test_no_private_name_is_imported_across_modules():
    mods = modules()
    private = []
    for path in mods.values():
        for line, target, names in imports(path, set(mods)):
            private += [
                f"{path.relative_to(ROOT)}:{line}: {n} from {target}"
                for n in names
                if n.startswith("_") and not n.startswith("__")
            ]
            if any(part.startswith("_") and not part.startswith("__") for part in target.split(".")):
                private.append(f"{path.relative_to(ROOT)}:{line}: private module {target}")
    assert not private, "private names imported across modules:\n" + "\n".join(private)


def test_the_layer_check_catches_an_upward_import(tmp_path):
    # The check itself: a data module that imported the driver would be reported.
    fake = tmp_path / "fake.py"
    fake.write_text("from search.driver.runner import run_search\nimport router_models\n")
    found = imports(fake, set(modules()))
    assert [t for _, t, _ in found] == ["search.driver.runner", "router_models"]
    assert layer_of("search.driver.runner") < layer_of("search.data.router_data")
    assert layer_of("router_models.io") > layer_of("search.files.atomic")


def import_graph() -> dict[str, list[str]]:
    """Each of our modules -> the modules of ours it imports (deferred imports inside functions
    count too: a cycle through one still ties the two modules together)."""
    mods = modules()
    return {
        m: sorted({t for _, t, _ in imports(p, set(mods)) if t in mods and t != m}) for m, p in mods.items()
    }


def cycles_in(graph: dict[str, list[str]]) -> list[list[str]]:
    """The cycles a depth-first walk of ``graph`` meets, each as a path back to its start."""
    cycles: list[list[str]] = []
    state = dict.fromkeys(graph, 0)  # 0 unseen, 1 on the path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state[nxt] == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif state[nxt] == 0:
                visit(nxt, path + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if state[m] == 0:
            visit(m, [m])
    return cycles


def test_no_module_imports_itself_around_a_cycle():
    cycles = cycles_in(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_catches_a_cycle():
    assert cycles_in({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c", "a"]]
    assert cycles_in({"a": ["b"], "b": [], "c": ["a", "b"]}) == []


# Optuna's private names we reach for; only search/study/optuna_internals.py may name them.
OPTUNA_PRIVATE = re.compile(
    r"\._storage\b|\._trial_id\b|\._backend\b|\._min_resource\b|\._reduction_factor\b"
    r"|\._min_early_stopping_rate\b|\._bootstrap_count\b|completed_rung_|optuna(\.\w+)*\._(?!_)\w"
)
OPTUNA_INTERNALS = "search/study/optuna_internals.py"


def optuna_private_reads(path: Path, root: Path = ROOT) -> list[str]:
    """Lines of ``path`` that name one of Optuna's private names (comments aside)."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if OPTUNA_PRIVATE.search(line.split("#", 1)[0]):
            found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_only_one_module_touches_optunas_private_api():
    found = []
    for path in modules().values():
        if path.relative_to(ROOT).as_posix() != OPTUNA_INTERNALS:
            found += optuna_private_reads(path)
    assert not found, f"Optuna's private API outside {OPTUNA_INTERNALS}:\n" + "\n".join(found)
    assert optuna_private_reads(ROOT / OPTUNA_INTERNALS), "the check no longer sees the names it guards"


def test_the_private_check_catches_a_private_read(tmp_path):
    fake = tmp_path / "fake.py"
    fake.write_text(
        "x = study._storage\nfrom optuna.storages.journal._storage import Op\nok = t.number  # t._trial_id\n"
    )
    assert [line.split(":")[1] for line in optuna_private_reads(fake, tmp_path)] == ["1", "2"]
