"""Label fusion: turning several volunteers' masks into one soft and hard label."""

# The fusion jobs' names (``fusion.jobs``), for code that sends them by name.
FUSE_TASK = "fusion.fuse_task"
FUSE_PROJECT = "fusion.fuse_project"
# Args (project_id, user_id): re-fuse the rater's tasks after their exclusion changed.
REFUSE_RATER = "fusion.refuse_rater"
# Beat: send FUSE_PROJECT for the projects whose pooled rates are stale.
REFRESH_RATES = "fusion.refresh_rates"
