# Settings shared by run_grpo.sh and run_ppo.sh (written by `deepretrieval export verl`; sourced, not run).
# Every value below can be overridden from the environment (MODEL_PATH=... bash run_grpo.sh) and any verl key
# by a further key=value argument (bash run_grpo.sh trainer.total_epochs=3). Key names: verl 0.9.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

MODEL_PATH="${MODEL_PATH:-{{MODEL}}}"  # DeepRetrieval's own choice of policy model
# Every GPU of this machine unless told otherwise.
N_GPUS="${N_GPUS:-$(nvidia-smi -L 2>/dev/null | wc -l | awk '{print ($1 > 0 ? $1 : 1)}')}"
NNODES="${NNODES:-1}"
# Prompts per step. Divisible by N_GPUS x NNODES; mini-batches split it into PPO updates.
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-64}"
PPO_MINI_BATCH_SIZE="${PPO_MINI_BATCH_SIZE:-32}"  # prompts per optimizer step: 2 updates per batch
MICRO_BATCH_PER_GPU="${MICRO_BATCH_PER_GPU:-8}"  # sequences per forward/backward: memory, not maths
LOG_PROB_MICRO_BATCH_PER_GPU="${LOG_PROB_MICRO_BATCH_PER_GPU:-16}"  # no gradients there: twice as many fit
# The longest exported prompt with its chat template (estimated at export); longer ones are dropped, not cut.
MAX_PROMPT_LENGTH="${MAX_PROMPT_LENGTH:-{{MAX_PROMPT_LENGTH}}}"
# The recipe's completion length plus the answer tags verl does not pre-fill (the policy writes <answer>...).
MAX_RESPONSE_LENGTH="${MAX_RESPONSE_LENGTH:-{{MAX_RESPONSE_LENGTH}}}"
LR="${LR:-1e-6}"  # a full fine-tune of a 3B model: the recipe's rate is for small models on a CPU
GPU_MEMORY_UTILIZATION="${GPU_MEMORY_UTILIZATION:-0.6}"  # vLLM's share; FSDP's weights and states need the rest
ROLLOUT_TP="${ROLLOUT_TP:-1}"  # a 3B model fits on one GPU: no tensor parallelism in generation
# Weights and optimizer state on the GPU (fast); set to True on GPUs under 40 GB.
ACTOR_OFFLOAD="${ACTOR_OFFLOAD:-False}"
EPOCHS="${EPOCHS:-10}"
TEST_FREQ="${TEST_FREQ:-10}"  # validate on val.parquet every N steps (and before training)
SAVE_FREQ="${SAVE_FREQ:-50}"

COMMON=(
    data.train_files="$HERE/train.parquet"
    data.val_files="$HERE/val.parquet"
    data.prompt_key=prompt
    data.train_batch_size="$TRAIN_BATCH_SIZE"
    data.max_prompt_length="$MAX_PROMPT_LENGTH"
    data.max_response_length="$MAX_RESPONSE_LENGTH"
    data.filter_overlong_prompts=True
    data.truncation=error
    # The reward: deepretrieval's task on the recipe's backend (reward.py; older verl: custom_reward_function.*).
    reward.custom_reward_function.path="$HERE/reward.py"
    reward.custom_reward_function.name=compute_score
    actor_rollout_ref.model.path="$MODEL_PATH"
    actor_rollout_ref.model.use_remove_padding=True
    actor_rollout_ref.model.enable_gradient_checkpointing=True  # activations recomputed: memory for batch
    actor_rollout_ref.actor.optim.lr="$LR"
    actor_rollout_ref.actor.ppo_mini_batch_size="$PPO_MINI_BATCH_SIZE"
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="$MICRO_BATCH_PER_GPU"
    actor_rollout_ref.actor.fsdp_config.param_offload="$ACTOR_OFFLOAD"
    actor_rollout_ref.actor.fsdp_config.optimizer_offload="$ACTOR_OFFLOAD"
    actor_rollout_ref.rollout.name=vllm
    actor_rollout_ref.rollout.gpu_memory_utilization="$GPU_MEMORY_UTILIZATION"
    actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP"
    actor_rollout_ref.rollout.temperature={{TEMPERATURE}}  # the recipe's sampling temperature
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu="$LOG_PROB_MICRO_BATCH_PER_GPU"
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu="$LOG_PROB_MICRO_BATCH_PER_GPU"
    actor_rollout_ref.ref.fsdp_config.param_offload=True  # the reference model only runs forward passes
    trainer.n_gpus_per_node="$N_GPUS"
    trainer.nnodes="$NNODES"
    trainer.logger="['console']"
    trainer.project_name=deepretrieval
    trainer.experiment_name="${EXPERIMENT:-{{EXPERIMENT}}}"
    trainer.total_epochs="$EPOCHS"
    trainer.test_freq="$TEST_FREQ"
    trainer.save_freq="$SAVE_FREQ"
    trainer.val_before_train=True  # the start's score: what training must beat
)
