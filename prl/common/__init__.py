"""Shared machinery every algorithm family uses: episode recording, query selection, the
Bradley–Terry/IPO/DPO loss family, the SB3 learner base and the PPO rollout core."""
