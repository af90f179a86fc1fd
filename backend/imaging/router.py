"""``/api/slices``: slice images for raters (long-cached) and reference masks for experts."""

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from backend.auth.deps import CurrentUser
from backend.auth.models import EXPERT_ROLES
from backend.core.deps import SessionDep, StorageDep
from backend.core.errors import NotFound, PermissionDenied, error_responses
from backend.core.validation import PathId
from backend.imaging.service import slice_and_case

router = APIRouter(prefix="/slices", tags=["imaging"], responses=error_responses(401, 403, 404))

# Images never change once imported (a re-import makes new slices), so clients may keep them.
IMMUTABLE = "private, max-age=31536000, immutable"
# Role-gated images must not outlive a logout in the browser's cache.
NO_STORE = "no-store"
PNG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "An 8-bit PNG"}
}


def _png(request: Request, storage_key: str, data: bytes, *, cache: str = IMMUTABLE) -> Response:
    etag = '"' + hashlib.sha256(storage_key.encode()).hexdigest()[:32] + '"'
    headers = {"Cache-Control": cache, "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type="image/png", headers=headers)


@router.get(
    "/{slice_id}/images/{contrast}.png",
    name="slice_image",
    response_class=Response,
    responses={**PNG, 304: {"description": "Not modified (If-None-Match matched the ETag)"}},
)
def slice_image(
    slice_id: PathId,
    contrast: Annotated[str, Path(max_length=16)],
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    storage: StorageDep,
) -> Response:
    """One contrast of a slice as an 8-bit PNG (cropped, radiological orientation); experts
    and admins only. Volunteers see images through their leases alone
    (``/api/tasks/{lease}/images/...``): a slice's own URL would map what they were shown
    back to slice ids, and so tell gold and repeats from the rest."""
    if user.role not in EXPERT_ROLES:
        raise PermissionDenied("Slice images by id are for experts; volunteers see their tasks")
    slice_, case = slice_and_case(session, slice_id)
    # Images that may not be published are never kept in shared caches.
    restricted = not case.consent_public_images
    key = slice_.image_keys.get(contrast)
    if key is None:
        raise NotFound(f"Slice {slice_id} has no {contrast!r} image")
    return _png(request, key, storage.get(key), cache=NO_STORE if restricted else IMMUTABLE)


@router.get(
    "/{slice_id}/reference.png",
    response_class=Response,
    responses={**PNG, 304: {"description": "Not modified (If-None-Match matched the ETag)"}},
)
def reference_mask(
    slice_id: PathId, request: Request, user: CurrentUser, session: SessionDep, storage: StorageDep
) -> Response:
    """The expert reference lesion mask of a slice; experts and admins only."""
    if user.role not in EXPERT_ROLES:
        raise PermissionDenied("Reference masks are visible to experts only")
    slice_, _case = slice_and_case(session, slice_id)
    if slice_.reference_key is None:
        raise NotFound(f"Slice {slice_id} has no reference mask")
    return _png(request, slice_.reference_key, storage.get(slice_.reference_key), cache=NO_STORE)
