"""Label fusion: turning several volunteers' masks into one soft and hard label."""

# The fusion jobs' names (``fusion.jobs``), for code that sends them by name.
FUSE_TASK = "fusion.fuse_task"
FUSE_PROJECT = "fusion.fuse_project"
