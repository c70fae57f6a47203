"""Shared-prefix GRPO: each group's prompt is encoded once, in training and when sampling.

The completions of a GRPO group share one prompt, and the prompt is most of each sequence (300 prompt tokens
to 30 completion tokens in the literature recipe). Stock TRL encodes it once per completion: 8 times when
sampling, 8 times in the policy's forward and backward, 8 more in every old-policy or reference pass. Here:

- **Log-probs** (``packed_logps``): the group is one sequence, ``[prompt, c1, c2, ..., cG]``, under a block
  attention mask: every completion sees the prompt and itself, never another completion, and keeps the
  position ids stock TRL gives it. The prompt's keys and values serve all completions and the loss's gradient
  flows back through them once. This is the "shared-prefix forward" of Prefix Grouper (arXiv 2506.05433):
  the same outputs and gradients as one sequence per completion, up to float summation order.
- **Sampling** (``prefill_once``): the distinct prompts are prefilled once, the key/value cache is copied to
  each completion of the group, and ``generate`` continues from it with the trainer's generation config
  (stop tokens, temperature, ``top_k``, ``top_p``) unchanged.

``SharedPrefixGRPOTrainer`` is TRL's ``GRPOTrainer`` with these two methods overridden and nothing else
(reward, logging, checkpoints and resume are TRL's). A batch it cannot help (no prompt repeated, images,
MoE auxiliary loss, vLLM or continuous-batching generation) goes to TRL's own code.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from .errors import DeepRetrievalError

# Attention implementations that take an arbitrary 4D mask: the block mask needs one.
MASKED_ATTENTION = ("sdpa", "eager")


def _base(model: Any) -> Any:
    """The transformers model under a PEFT wrapper and a multi-process one (DDP, a DeepSpeed engine: ``.module``)."""
    while not hasattr(model, "config") and hasattr(model, "module"):
        model = model.module
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _cache_argument(model: Any) -> str:
    """The name the model's forward takes its key/value cache under (transformers renamed it in 5.x)."""
    parameters = inspect.signature(type(_base(model)).forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def check_model(model: Any) -> None:
    """Refuse, in one line, a model shared-prefix training cannot run exactly: it needs position ids, a 4D
    attention mask (sdpa or eager attention) and a key/value cache."""
    base = _base(model)
    name = type(base).__name__
    parameters = inspect.signature(type(base).forward).parameters
    attention = getattr(base.config, "_attn_implementation", None)
    problem = None
    if "position_ids" not in parameters:
        problem = "its forward takes no position_ids"
    elif not ({"cache", "past_key_values"} & parameters.keys()):
        problem = "it has no key/value cache"
    elif attention not in MASKED_ATTENTION:
        problem = f"its {attention} attention takes no custom 4D mask (sdpa or eager does)"
    if problem:
        raise DeepRetrievalError(
            f"shared_prefix: {name} cannot share a prompt across completions ({problem}); set shared_prefix: false"
        )


def prompt_groups(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first row of each distinct row, in order of first appearance; each row's group index)."""
    group_of: dict[tuple, int] = {}
    heads: list[int] = []
    inverse = []
    for i, row in enumerate(rows.tolist()):
        if (key := tuple(row)) not in group_of:
            group_of[key] = len(heads)
            heads.append(i)
        inverse.append(group_of[key])
    return torch.tensor(heads, dtype=torch.long), torch.tensor(inverse, dtype=torch.long)


def packed_logps(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    *,
    compute_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """Per-token log-probs (and entropies) of the last ``logits_to_keep`` tokens of each row, as TRL's
    ``_get_per_token_logps_and_entropies`` computes them, with each distinct prompt encoded once.

    Rows are TRL's: a left-padded prompt then a right-padded completion. ``model`` carries TRL's fused LM head
    (``add_fused_lm_head``). None when no prompt repeats (nothing to share). The packed row of a group is its
    prompt, then one slot per completion; a completion's first token is scored from the prompt's last position
    (shared by the group), the others from the slot's own positions.
    """
    rows, total = input_ids.shape
    width = logits_to_keep
    length = total - width  # P: prompt length, left padding included
    first, group = prompt_groups(torch.cat([input_ids[:, :length], attention_mask[:, :length]], dim=1))
    groups = len(first)
    if groups == rows or length < 1 or width < 1:
        return None
    device = input_ids.device
    members = [torch.nonzero(group == g).flatten().tolist() for g in range(groups)]
    slots = max(len(m) for m in members)
    packed_len = length + slots * width

    ids = torch.zeros((groups, packed_len), dtype=input_ids.dtype, device=device)
    valid = torch.zeros((groups, packed_len), dtype=torch.bool, device=device)
    # Segment 0: the shared prompt; segment s + 1: slot s. ``local``: the position within the segment.
    # Positions are TRL's: the prompt's (padding included), and each completion's after it.
    segment = torch.zeros(packed_len, dtype=torch.long, device=device)
    local = torch.arange(packed_len, device=device)
    positions = torch.arange(packed_len, device=device)
    for s in range(slots):
        start = length + s * width
        segment[start : start + width] = s + 1
        local[start : start + width] = torch.arange(width, device=device)
        positions[start : start + width] = torch.arange(length, length + width, device=device)

    completion_mask = attention_mask[:, length:].bool()
    starts = torch.zeros(rows, dtype=torch.long)  # each input row's slot start in its packed row
    for g, rows_of_group in enumerate(members):
        ids[g, :length] = input_ids[first[g], :length]
        valid[g, :length] = attention_mask[first[g], :length].bool()
        for s, row in enumerate(rows_of_group):
            start = starts[row] = length + s * width
            ids[g, start : start + width] = input_ids[row, length:]
            valid[g, start : start + width] = completion_mask[row]

    # Who sees whom: the prompt causally; a slot the whole prompt and itself causally; never another slot.
    q_seg, k_seg = segment[:, None], segment[None, :]
    causal = local[None, :] <= local[:, None]
    sees = ((k_seg == 0) & ((q_seg != 0) | causal)) | ((k_seg == q_seg) & (q_seg != 0) & causal)
    allowed = sees[None] & valid[:, None, :]
    allowed |= torch.eye(packed_len, dtype=torch.bool, device=device)[None]  # a padding query sees itself: no NaN
    mask = _attention_mask(model, allowed[:, None])

    # The positions that score each row's completion tokens, in TRL's order: the prompt's last, then the slot's
    # first width - 1. Only these go through the LM head (a vocabulary-wide projection).
    packed_rows = group.to(device)[:, None].expand(-1, width)
    take = torch.cat([torch.full((rows, 1), length - 1), starts[:, None] + torch.arange(width - 1)[None]], dim=1)
    take = take.to(device)
    # TRL's labels: a completion token masked out of attention is not scored (-100).
    labels = input_ids[:, length:].masked_fill(~completion_mask, -100)

    def scored_positions(module, args, output):
        output.last_hidden_state = output.last_hidden_state[packed_rows, take]
        return output

    # TRL's fused head runs the backbone, then the head on every position the backbone returns: the hook returns
    # the scoring positions only, and ``shift_labels`` are their labels (scored as they are, unshifted).
    hook = _base(model).base_model.register_forward_hook(scored_positions)
    try:
        outputs = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions[None].expand(groups, -1),
            shift_labels=labels,
            fused_lm_head=True,
        )
    finally:
        hook.remove()
    return outputs.log_probs, outputs.entropy if compute_entropy else None


def _attention_mask(model: Any, allowed: torch.Tensor) -> torch.Tensor:
    """The 4D mask in the form the model's attention takes as it is: boolean for sdpa, additive for eager."""
    base = _base(model)
    if base.config._attn_implementation == "sdpa":
        return allowed
    dtype = next(base.parameters()).dtype
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


def prefill_once(
    model: Any,
    prompt_ids: list[list[int]],
    *,
    pad_id: int,
    pad_to_multiple_of: int | None,
    generation_config: Any,
    device: torch.device,
) -> torch.Tensor | None:
    """``model.generate`` on the left-padded ``prompt_ids`` with each distinct prompt prefilled once: returns
    what ``generate`` returns (prompt then completion ids, one row per prompt), or None when no prompt repeats.

    The distinct prompts but their last token are run once; the cache is copied to every row of their group;
    ``generate`` then starts from the last prompt token. Position ids are ``generate``'s own (from the attention
    mask), so the prefill and the first generated step see the same positions as in one ``generate`` call.
    """
    from trl.trainer.utils import pad

    tensors = [torch.tensor(ids) for ids in prompt_ids]
    padded = pad(tensors, padding_value=pad_id, padding_side="left", pad_to_multiple_of=pad_to_multiple_of)
    mask = pad(
        [torch.ones_like(t) for t in tensors],
        padding_value=0,
        padding_side="left",
        pad_to_multiple_of=pad_to_multiple_of,
    )
    first, group = prompt_groups(torch.cat([padded, mask], dim=1))
    if len(first) == len(prompt_ids) or padded.size(1) < 2:
        return None
    padded, mask = padded.to(device), mask.to(device)
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    head = first.to(device)
    cache_name = _cache_argument(model)
    prefill = model(
        input_ids=padded[head, :-1],
        attention_mask=mask[head, :-1],
        position_ids=positions[head, :-1],
        use_cache=True,
    )
    cache = getattr(prefill, "cache", None) or getattr(prefill, "past_key_values", None)
    cache.batch_select_indices(group.to(device))
    return model.generate(
        input_ids=padded, attention_mask=mask, generation_config=generation_config, **{cache_name: cache}
    )


def shared_prefix_trainer():
    """TRL's ``GRPOTrainer`` with shared-prefix log-probs and prefill-once sampling (imported lazily: TRL is
    heavy)."""
    from trl import GRPOTrainer
    from trl.models.utils import unwrap_model_for_generation

    class SharedPrefixGRPOTrainer(GRPOTrainer):
        """GRPOTrainer whose per-token log-probs and sampling encode each group's prompt once."""

        def _get_per_token_logps_and_entropies(
            self,
            model,
            input_ids,
            attention_mask,
            logits_to_keep,
            batch_size=None,
            compute_entropy=False,
            compute_aux_loss=False,
            **multimodal,
        ):
            if not compute_aux_loss and all(value is None for value in multimodal.values()):
                with self.accelerator.autocast():
                    packed = packed_logps(
                        model, input_ids, attention_mask, logits_to_keep, compute_entropy=compute_entropy
                    )
                if packed is not None:
                    return (*packed, None)
            return super()._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size=batch_size,
                compute_entropy=compute_entropy,
                compute_aux_loss=compute_aux_loss,
                **multimodal,
            )

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
            stock = (
                self.use_vllm
                or self.use_transformers_continuous_batching
                or images is not None
                or multimodal_fields
                or has_tool_images
            )
            if not stock:
                with (
                    unwrap_model_for_generation(
                        self.model_wrapped,
                        self.accelerator,
                        gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                        generation_kwargs=self.generation_kwargs,
                        gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
                    ) as unwrapped,
                    torch.no_grad(),
                    self._dist.summon_full_params(self.model_wrapped, recurse=False),
                ):
                    generated = prefill_once(
                        unwrapped,
                        prompt_ids,
                        pad_id=self._tokenizer.pad_token_id,
                        pad_to_multiple_of=self.pad_to_multiple_of,
                        generation_config=self.generation_config,
                        device=self.accelerator.device,
                    )
                if generated is not None:
                    width = _padded_width(max(len(ids) for ids in prompt_ids), self.pad_to_multiple_of)
                    return _until_eos(generated[:, width:], self.eos_token_ids), None
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images=has_tool_images
            )

    return SharedPrefixGRPOTrainer


def _padded_width(width: int, multiple: int | None) -> int:
    return width if not multiple else -(-width // multiple) * multiple


def _until_eos(completions: torch.Tensor, eos_ids: list[int]) -> list[list[int]]:
    """Each completion up to and including its first stop token (all of it when it has none), as TRL keeps it."""
    kept = []
    stops = set(eos_ids)
    for row in completions.tolist():
        end = next((i for i, token in enumerate(row) if token in stops), len(row) - 1)
        kept.append(row[: end + 1])
    return kept
