"""Gamification that rewards quality: the points ledger, levels, badges, streaks,
leaderboards, community goals and impact."""

# The jobs' names (``gamification.jobs``), for code that sends them by name.
# Args (task_id): award a fused task's answers (sent by the fusion job through the outbox).
CONFIRM_TASK = "gamification.confirm_task"
# Args (project_id, user_id): a rater was suspended or reinstated (sent by quality control).
RATER_CHANGED = "gamification.rater_changed"
