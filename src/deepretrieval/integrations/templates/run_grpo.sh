#!/usr/bin/env bash
# GRPO with verl on this export: `bash run_grpo.sh [key=value ...]` (see verl_common.sh for the settings).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/verl_common.sh"

python3 -m verl.trainer.main_ppo \
    "${COMMON[@]}" \
    algorithm.adv_estimator=grpo \
    actor_rollout_ref.rollout.n="${GROUP_SIZE:-{{GROUP_SIZE}}}" \
    actor_rollout_ref.actor.use_kl_loss=True \
    actor_rollout_ref.actor.kl_loss_coef="${KL_COEF:-{{KL_COEF}}}" \
    actor_rollout_ref.actor.kl_loss_type=low_var_kl \
    algorithm.use_kl_in_reward=False \
    trainer.critic_warmup=0 \
    "$@"
# rollout.n: completions per prompt, the GRPO group (the recipe's num_generations). KL: a loss term on the
# reference model (the recipe's beta, 0.001 when it has none), not a reward term: GRPO has no critic to carry it.
