#!/usr/bin/env bash
# PPO with a critic (GAE advantages), the original DeepRetrieval's choice: `bash run_ppo.sh [key=value ...]`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/verl_common.sh"

python3 -m verl.trainer.main_ppo \
    "${COMMON[@]}" \
    algorithm.adv_estimator=gae \
    actor_rollout_ref.rollout.n=1 \
    algorithm.use_kl_in_reward=True \
    algorithm.kl_ctrl.kl_coef="${KL_COEF:-{{KL_COEF}}}" \
    critic.model.path="$MODEL_PATH" \
    critic.model.use_remove_padding=True \
    critic.model.enable_gradient_checkpointing=True \
    critic.optim.lr="${CRITIC_LR:-1e-5}" \
    critic.ppo_micro_batch_size_per_gpu="$MICRO_BATCH_PER_GPU" \
    critic.fsdp.param_offload="$ACTOR_OFFLOAD" \
    critic.fsdp.optimizer_offload="$ACTOR_OFFLOAD" \
    trainer.critic_warmup=0 \
    "$@"
# rollout.n=1: the critic's value estimate is the baseline, no group needed. KL in the reward (PPO's classic
# penalty). The critic starts from the policy's weights, with a 10x higher learning rate; its FSDP offload
# follows the actor's (verl 0.9 names it critic.fsdp.*).
