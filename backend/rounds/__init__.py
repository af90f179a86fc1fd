"""Active-learning rounds and the registry of trained model versions (the ML worker in ``ml``
trains and scores; the backend only records and sends jobs by name)."""

# Job names. ``rounds.*`` run in the backend worker (``rounds.jobs``); ``ml.*`` in the ML
# worker (``ml.jobs``, queue ``gpu``), which the backend never imports.
FUSE_ROUND = "rounds.fuse_round"
RESUME_STALLED = "rounds.resume_stalled"
TRAIN_ROUND = "ml.train_round"
SCORE_POOL = "ml.score_pool"

# The ML worker's training configurations a round may name: the keys of ``ml.config.CONFIGS``,
# which checks at import that they are the same.
CONFIG_NAMES = ("tiny", "cpu", "gpu")
