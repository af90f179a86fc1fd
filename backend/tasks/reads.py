"""What the task routes answer: a lease as the studio reads it (its image URLs and sprite)
and a stored answer with its feedback."""

import base64

from backend.annotations import service as annotations
from backend.annotations.schemas import AnnotationRead, FeedbackRead
from backend.gamification.schemas import RewardRead
from backend.imaging import sprite
from backend.tasks import service
from backend.tasks.schemas import NeighbourRead, SliceRead, SpriteRead, TaskRead
from backend.tasks.service import SliceView


def image_urls(lease_id: int, offset: int, slice_: SliceView) -> dict[str, str]:
    """Relative URLs of a leased slice's (or neighbour's) contrast images.

    Scoped to the lease, not the slice: a slice's own URL would tell a volunteer they had seen
    it before (a repeat) or that its id is out of the queue's order (gold). Written out rather
    than built with ``url_path_for``, which walked the routes on every call (5 % of a request);
    ``test_router`` checks they resolve.
    """
    return {
        contrast: f"/api/tasks/{lease_id}/images/{offset}/{contrast}.png"
        for contrast in sorted(slice_.image_keys)
    }


def sprite_token(lease_id: int) -> str:
    """What a lease's sprite bytes and ETag are made unique by (``imaging.variant``)."""
    return f"{lease_id}/sprite"


def task_read(lease: service.Lease) -> TaskRead:
    slice_ = lease.slice
    near = [(n.index - slice_.index, n.image_keys) for n in lease.neighbours]
    return TaskRead(
        id=lease.id,
        project_id=lease.task.project_id,
        slice=SliceRead(
            axis=slice_.axis.value,
            width=slice_.width,
            height=slice_.height,
            images=image_urls(lease.id, 0, slice_),
            sprite=SpriteRead(
                url=f"/api/tasks/{lease.id}/sprite.png",
                frames=sprite.frames(slice_.image_keys, near),
            ),
        ),
        neighbours=[
            NeighbourRead(
                offset=n.index - slice_.index,
                images=image_urls(lease.id, n.index - slice_.index, n),
            )
            for n in lease.neighbours
        ],
        lease_expires_at=lease.lease_expires_at,
    )


def reward_read(result: annotations.Submission) -> RewardRead | None:
    """An answer's points as the studio says them: a check answer's at once, a normal
    answer's once enough volunteers labelled the slice."""
    if result.expert:
        return None
    feedback = result.feedback
    if feedback is None:
        return RewardRead(
            status="pending",
            points=0,
            message="Points come once enough volunteers have labelled this slice: the closer "
            "your outline to theirs, the more",
        )
    points = feedback.points or 0
    if points:
        return RewardRead(
            status="awarded", points=points, message="for your outline against the expert's"
        )
    return RewardRead(
        status="none",
        points=0,
        message="No points for this one: compare your outline with the expert's below",
    )


def annotation_read(result: annotations.Submission) -> AnnotationRead:
    stored, feedback = result.annotation, result.feedback
    assert stored.id is not None
    return AnnotationRead(
        reward=reward_read(result),
        id=stored.id,
        task_id=result.lease_id,
        lesion_pixels=stored.lesion_pixels,
        duration_ms=stored.duration_ms,
        created_at=stored.created_at,
        feedback=None
        if feedback is None
        else FeedbackRead(
            dice=feedback.dice,
            lesions_reference=feedback.lesions_reference,
            lesions_found=feedback.lesions_found,
            lesions_missed=feedback.lesions_missed,
            false_alarms=feedback.false_alarms,
            overlay_url=f"/api/annotations/{stored.id}/feedback.png",
            overlay_png=None
            if feedback.overlay is None
            else "data:image/png;base64," + base64.b64encode(feedback.overlay).decode(),
        ),
    )
