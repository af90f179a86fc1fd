"""API shapes of active-learning rounds."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from backend.core.validation import MAX_DB_ID
from backend.rounds import CONFIG_NAMES
from backend.rounds.selection import STRATEGIES

# The default until a project's own learning curves show a strategy that beats it: on the
# demo benchmark (bench/active_learning.py, bench/RESULTS.md) neither entropy nor
# bald_diverse did.
DEFAULT_STRATEGY = "random_fg"
# One line per strategy of ``rounds.selection.STRATEGIES``, for people choosing one.
STRATEGY_HELP = {
    "random_fg": "Random, but slices with more FLAIR-bright (possible lesion) pixels come up "
    "far more often.",
    "random": "Any unlabelled slice, uniformly at random: the plain baseline.",
    "entropy": "The slices the last round's model is least sure about (highest predictive "
    "entropy).",
    "bald": "The slices on which the model's dropout samples disagree most (BALD, mutual "
    "information).",
    "bald_diverse": "BALD, spread out: a few slices per case at most, never two neighbouring "
    "slices.",
    "cold_start": "What a first round without a model does: random_fg.",
}


class RoundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    project_id: int = Field(ge=1, le=MAX_DB_ID)
    strategy: str = Field(default=DEFAULT_STRATEGY, max_length=32)
    budget: int = Field(default=50, ge=1, le=100_000, description="Slices to label this round")
    config: str | None = Field(
        default=None, description="Training config (tiny, cpu, gpu); default by device"
    )
    minutes: float | None = Field(default=None, gt=0, le=24 * 60)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        if value not in STRATEGIES:
            raise ValueError(f"unknown strategy; known: {', '.join(sorted(STRATEGIES))}")
        return value

    @field_validator("config")
    @classmethod
    def _known_config(cls, value: str | None) -> str | None:
        if value is not None and value not in CONFIG_NAMES:
            raise ValueError(f"unknown config; known: {', '.join(sorted(CONFIG_NAMES))}")
        return value


class RoundModel(BaseModel):
    """The model a round trained, with its held-out figures."""

    id: int
    status: str
    dice: float | None
    lesion_f1: float | None
    device: str
    steps: int | None
    seconds: float | None
    # Cases it learned from or was evaluated on that were withdrawn since (public ids).
    withdrawn_cases: list[str] = []


class RoundRead(BaseModel):
    id: int
    project_id: int
    number: int
    status: str
    strategy: str
    selected_by: str | None
    budget: int
    config: str | None
    minutes: float | None
    selected: int  # slices chosen for labelling
    labelled: int  # of them, those whose crowd task is done
    labelled_needed: int  # labelled chosen slices closing needs without force
    # Labelled slices of the project the round's model trains on: once trained, those it did
    # (labels_used); before, about those it would were the round closed now. None: unknown.
    training_slices: int | None
    training_chosen: int | None  # of them, the round's chosen slices
    labels_used: int | None
    scored_slices: int | None
    progress: float  # percent of the running stage
    eta_seconds: float | None
    detail: str
    error: str | None
    model: RoundModel | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class RoundClose(BaseModel):
    """Closing a round's labelling; ``force`` closes it below its labelled share."""

    model_config = ConfigDict(extra="forbid")

    force: StrictBool = Field(
        default=False,
        description="Close even though fewer of the chosen slices are labelled than closing "
        "needs (409 too_few_labelled without it)",
    )


class StrategyRead(BaseModel):
    name: str
    help: str
    needs_model: bool  # ranks by a model's scores; without them the round starts cold
    default: bool


class CurvePointRead(BaseModel):
    round: int
    labels_used: int
    dice: float | None
    lesion_f1: float | None
    model_version_id: int
