"""Bridges to other trainers: ``verl`` (export a recipe's data as verl's RL dataset, and score verl's rollouts
with the recipe's task and backend)."""
