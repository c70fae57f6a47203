from __future__ import annotations

import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from deepretrieval.errors import DeepRetrievalError
from deepretrieval.prompts import assistant_prefix, build_messages, render_prompt
from deepretrieval.types import Example

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tokenizer(template: str | None) -> PreTrainedTokenizerFast:
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]")))
    tok.chat_template = template
    return tok


EXAMPLE = Example("q", "  heart attack treatment ", {}, {"domain": "medical"})


@pytest.mark.parametrize("mode", ["rewrite", "expand"])
@pytest.mark.parametrize("variant", ["direct", "reasoning"])
def test_rendered_through_the_chat_template(mode, variant):
    text = render_prompt(build_messages(EXAMPLE, variant=variant, mode=mode), tokenizer(CHATML), variant=variant)
    system, user = text.index("<|im_start|>system"), text.index("<|im_start|>user")
    assert system < user < text.index("<|im_start|>assistant\n")
    assert "Information need: heart attack treatment<|im_end|>" in text
    assert "medical documents" in text
    assert text.endswith("<|im_start|>assistant\n" + assistant_prefix(variant))
    assert ("<think>" in text.split("<|im_start|>user")[0]) == (variant == "reasoning")


def test_modes_ask_for_different_things():
    rewrite = build_messages(EXAMPLE, mode="rewrite")[0]["content"]
    expand = build_messages(EXAMPLE, mode="expand")[0]["content"]
    assert "Rewrite" in rewrite and "extra keywords" in expand


def test_errors():
    with pytest.raises(DeepRetrievalError, match="no chat template"):
        render_prompt(build_messages(EXAMPLE), tokenizer(None))
    with pytest.raises(DeepRetrievalError, match="variant"):
        build_messages(EXAMPLE, variant="chatty")
    with pytest.raises(DeepRetrievalError, match="mode"):
        build_messages(EXAMPLE, mode="shout")


def test_stopped_completions_get_the_canonical_answer_end():
    from deepretrieval.parsing import parse_completion
    from deepretrieval.prompts import close_answer

    prefix = assistant_prefix("direct")
    for stopped in ('heart attack"', 'heart attack"}', 'heart attack",', 'heart attack"}</answer>'):
        closed = close_answer(stopped, "direct")
        assert closed == 'heart attack"}</answer>'
        assert parse_completion(closed, prefilled=prefix).query == "heart attack"
    assert close_answer("never closed", "direct") == "never closed"
    assert close_answer('a "b"', "reasoning") == 'a "b"'


def test_stop_tokens_are_exactly_the_tokens_holding_a_quote():
    from deepretrieval.models import load_model_and_tokenizer
    from deepretrieval.prompts import stop_token_ids

    _, tok = load_model_and_tokenizer("tiny-random")
    stops = stop_token_ids(tok, "direct")
    assert stops and all('"' in tok.decode([i]) for i in stops)
    assert tok.convert_tokens_to_ids('"}') in stops
    assert tok.convert_tokens_to_ids("heart") not in stops
    assert stop_token_ids(tok, "reasoning") == []
