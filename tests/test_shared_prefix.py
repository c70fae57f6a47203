"""Shared-prefix GRPO against TRL's own code, on a tiny random model in float32.

The reference is TRL's ``GRPOTrainer`` itself: its per-token log-probs, the gradient of its GRPO loss and its
``generate`` path, on the same weights. The batch has what real batches have: two groups, prompts of
different lengths (left padding), completions of different lengths (right padding), one completion masked out
entirely (as ``mask_truncated_completions`` does).
"""

from __future__ import annotations

import pytest
import torch

from deepretrieval.errors import DeepRetrievalError
from deepretrieval.models import build_tiny_random
from deepretrieval.shared_prefix import check_model, packed_logps, prompt_groups, shared_prefix_trainer

GROUP = 4


def trainer(tmp_path, *, shared: bool, lora: bool = False, checkpointing: bool = False, seed: int = 0):
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer = build_tiny_random(seed)
    args = GRPOConfig(
        output_dir=str(tmp_path / ("shared" if shared else "stock")),
        per_device_train_batch_size=2 * GROUP,
        num_generations=GROUP,
        max_completion_length=6,
        report_to=[],
        loss_type="dapo",
        seed=seed,
        activation_checkpointing=checkpointing,
        bf16=False,
    )
    cls = shared_prefix_trainer() if shared else GRPOTrainer
    peft = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    made = cls(
        model=model,
        reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["a", "b"]}),
        processing_class=tokenizer,
        peft_config=peft if lora else None,
    )
    if lora:  # LoRA's B starts at zero: move it, so the adapter changes the outputs and gets a real gradient
        torch.manual_seed(seed + 1)
        with torch.no_grad():
            for name, param in made.model.named_parameters():
                if "lora_B" in name:
                    param.normal_(std=0.2)
    return made


def batch(pad_id: int) -> dict[str, torch.Tensor]:
    """Two groups of GROUP rows: prompts of 9 and 6 tokens (left padded to 9), completions of 1-6 tokens."""
    gen = torch.Generator().manual_seed(7)
    prompts = [torch.randint(5, 400, (9,), generator=gen), torch.randint(5, 400, (6,), generator=gen)]
    lengths = [6, 3, 1, 5, 4, 6, 2, 6]
    prompt_ids = torch.full((2 * GROUP, 9), pad_id)
    prompt_mask = torch.zeros((2 * GROUP, 9), dtype=torch.long)
    completion_ids = torch.full((2 * GROUP, 6), pad_id)
    completion_mask = torch.zeros((2 * GROUP, 6), dtype=torch.long)
    for row, n in enumerate(lengths):
        prompt = prompts[row // GROUP]
        prompt_ids[row, 9 - len(prompt) :] = prompt
        prompt_mask[row, 9 - len(prompt) :] = 1
        completion_ids[row, :n] = torch.randint(5, 400, (n,), generator=gen)
        completion_mask[row, :n] = 1
    completion_mask[5] = 0  # a truncated completion masked out whole: attends to nothing, scores nothing
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": prompt_mask,
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": torch.tensor([1.0, -0.5, 0.25, -0.75, 0.5, -1.0, 1.5, -1.0]),
        "num_items_in_batch": completion_mask.sum(),
    }


def logps(made, inputs, *, shared_only: bool = False):
    input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    width = inputs["completion_ids"].size(1)
    if shared_only:  # the packed path itself, not a fallback to TRL's
        return packed_logps(made.model, input_ids, mask, width, compute_entropy=True)
    out = made._get_per_token_logps_and_entropies(made.model, input_ids, mask, width, compute_entropy=True)
    return out[0], out[1]


def assert_close_relative(actual, expected, tolerance):
    scale = expected.abs().max()
    assert (actual - expected).abs().max() <= tolerance * scale, ((actual - expected).abs().max(), scale)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_log_probs_and_entropies_equal_trls(tmp_path, lora):
    stock, shared = trainer(tmp_path, shared=False, lora=lora), trainer(tmp_path, shared=True, lora=lora)
    inputs = batch(stock._tokenizer.pad_token_id)
    with torch.no_grad():
        expected_logps, expected_entropy = logps(stock, inputs)
        packed = logps(shared, inputs, shared_only=True)
    assert packed is not None
    mask = inputs["completion_mask"].bool()
    assert mask.sum() == 27  # 6+3+1+5 + 6+2+6 tokens scored (row 5 masked out): the check covers them all
    assert_close_relative(packed[0][mask], expected_logps[mask], 1e-5)
    assert_close_relative(packed[1][mask], expected_entropy[mask], 1e-5)
    # Outside the mask both are TRL's zeros, so the loss's masked sums are the same too.
    assert packed[0][~mask].abs().max() == 0 and expected_logps[~mask].abs().max() == 0


@pytest.mark.parametrize(
    ("lora", "checkpointing"), [(False, False), (True, False), (False, True)], ids=["full", "lora", "checkpointing"]
)
def test_gradient_of_the_grpo_loss_equals_trls(tmp_path, lora, checkpointing):
    grads = []
    for shared in (False, True):
        made = trainer(tmp_path, shared=shared, lora=lora, checkpointing=checkpointing)
        inputs = batch(made._tokenizer.pad_token_id)
        made.current_gradient_accumulation_steps = 1  # set by the training loop, which this test skips
        made.model.zero_grad()
        loss = made._compute_loss(made.model, inputs)
        loss.backward()
        named = {n: p.grad.clone() for n, p in made.model.named_parameters() if p.requires_grad}
        grads.append((loss.detach(), named))
    (stock_loss, stock_grads), (shared_loss, shared_grads) = grads
    assert stock_grads.keys() == shared_grads.keys()
    assert abs(shared_loss - stock_loss) <= 1e-5 * abs(stock_loss)
    flat_stock = torch.cat([g.flatten() for g in stock_grads.values()])
    flat_shared = torch.cat([shared_grads[n].flatten() for n in stock_grads])
    assert flat_stock.abs().max() > 0  # a gradient that is there to compare
    assert (flat_shared - flat_stock).norm() <= 1e-4 * flat_stock.norm()
    for name, grad in stock_grads.items():  # and parameter by parameter, the prompt's weights included
        assert_close_relative(shared_grads[name], grad, 1e-4)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_greedy_sampling_gives_trls_completions(tmp_path, lora):
    stock, shared = trainer(tmp_path, shared=False, lora=lora), trainer(tmp_path, shared=True, lora=lora)
    gen = torch.Generator().manual_seed(3)
    prompts = [torch.randint(5, 400, (n,), generator=gen).tolist() for n in (11, 5)]
    prompt_ids = [prompts[0]] * GROUP + [prompts[1]] * GROUP
    results = []
    for made in (stock, shared):
        made.generation_config.do_sample = False
        made.generation_config.max_new_tokens = 6
        results.append(made._generate_single_turn(prompt_ids, None, {}, GROUP)[0])
    expected, got = results
    assert got == expected
    assert expected[0] != expected[GROUP]  # the two prompts lead to different completions: not a trivial match


def test_sampling_draws_the_same_tokens_from_the_same_seed(tmp_path):
    """Sampling (temperature 1, top_k 50) consumes the random stream as one generate call does."""
    stock, shared = trainer(tmp_path, shared=False), trainer(tmp_path, shared=True)
    prompt_ids = [[17, 42, 99, 7]] * GROUP + [[5, 6, 300]] * GROUP
    results = []
    for made in (stock, shared):
        made.generation_config.max_new_tokens = 6
        torch.manual_seed(11)
        results.append(made._generate_single_turn(prompt_ids, None, {}, GROUP)[0])
    assert results[1] == results[0]
    assert len({tuple(c) for c in results[0][:GROUP]}) > 1  # sampled, not all the same


def test_groups_are_found_by_prompt_wherever_they_are():
    rows = torch.tensor([[1, 2], [3, 4], [1, 2], [3, 4], [5, 6]])
    heads, inverse = prompt_groups(rows)
    assert heads.tolist() == [0, 1, 4]
    assert inverse.tolist() == [0, 1, 0, 1, 2]


def test_a_batch_without_repeated_prompts_is_left_to_trl(tmp_path):
    made = trainer(tmp_path, shared=True)
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert packed_logps(made.model, ids, torch.ones_like(ids), 2) is None


def test_a_model_without_a_4d_mask_is_refused_in_one_line():
    model, _ = build_tiny_random()
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(DeepRetrievalError, match="shared_prefix: LlamaForCausalLM .*shared_prefix: false"):
        check_model(model)
