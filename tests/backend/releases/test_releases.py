"""Releases of a labelled project: what is in them (consent decides), that images and masks
round-trip onto the imported grid voxel for voxel, the ignore label on unlabelled slices,
determinism, the API with scoped tokens, Range and resume, and withdrawal superseding them.
On PostgreSQL."""

import gzip
import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from backend.audit.models import AuditAction, AuditEntry
from backend.auth.models import TokenScope, User, UserRole
from backend.core.config import Settings
from backend.core.db import create_db_engine, transaction
from backend.core.errors import Conflict, InvalidInput, NotFound
from backend.core.migrations import upgrade
from backend.core.storage import Storage
from backend.fusion.labels import read_soft
from backend.fusion.volumes import usable_labels
from backend.imaging.preprocess import canonical, to_display
from backend.main import create_app
from backend.projects.models import Project
from backend.releases import build as builder
from backend.releases import service
from backend.releases.models import Release, ReleaseStatus
from backend.releases.plan import Filters, make_plan
from tests.backend.releases.cases import Crowd, labelled_project
from tests.factories import create_token

pytestmark = pytest.mark.postgres


@dataclass
class Built:
    engine: Engine
    storage: Storage
    crowd: Crowd
    name: str
    root: Path  # the release exported to a folder


def nifti(data: bytes) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(data))


@pytest.fixture(scope="module")
def built(module_pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    engine = create_db_engine(module_pg_url)
    upgrade(engine)
    storage = Storage((tmp_path_factory.mktemp("rel") / "storage").as_uri())
    crowd = labelled_project(engine, storage, per_volunteer=36)
    with transaction(engine) as session:
        release = service.create(
            session, project_name=crowd.project, name="rel-r1", filters=Filters(), actor=None
        )
        release_id = release.id or 0
    made = service.run(engine, storage, release_id, url="http://localhost:8000")
    assert made is not None
    assert made.status is ReleaseStatus.ready
    root = tmp_path_factory.mktemp("export") / "rel-r1"
    with Session(engine) as session:
        for entry in service.files_of(session, release_id):
            target = root / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(storage.get(f"releases/rel-r1/{entry.path}"))
    yield Built(engine, storage, crowd, "rel-r1", root)
    engine.dispose()


def test_consent_decides_what_is_in_it(built: Built) -> None:
    cases = built.crowd.cases
    manifest = json.loads((built.root / "manifest.json").read_text())
    listed = {c["case"]: c for c in manifest["cases"]}
    assert cases["private"] not in listed  # no research sharing: not in any release
    assert listed[cases["labels"]]["images"] is False  # images may not be published
    assert not list(built.root.glob(f"imagesTr/{cases['labels']}_*"))
    assert (built.root / f"soft/{cases['labels']}.nii.gz").exists()
    for role in ("open1", "open2"):
        assert listed[cases[role]]["images"] is True
        assert {p.name for p in built.root.glob(f"imagesTr/{cases[role]}_*")} == {
            f"{cases[role]}_000{n}.nii.gz" for n in range(3)
        }
    # The held-out case: images and its expert mask in the test fold, never in training.
    assert listed[cases["held"]]["held_out"] is True
    assert (built.root / f"imagesTs/{cases['held']}_0000.nii.gz").exists()
    assert (built.root / f"labelsTs/{cases['held']}.nii.gz").exists()
    datalist = json.loads((built.root / "datalist.json").read_text())
    assert [e["case"] for e in datalist["validation"]] == [cases["held"]]
    assert {e["case"] for e in datalist["training"]} == {cases["open1"], cases["open2"]}
    dataset = json.loads((built.root / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "FLAIR", "1": "T1", "2": "T2"}
    assert dataset["labels"] == {"background": 0, "lesion": 1, "ignore": 2}
    assert dataset["numTraining"] == 2
    assert dataset["file_ending"] == ".nii.gz"
    assert manifest["cases"][0]["licence"] == "CC0-1.0"
    assert not list(built.root.glob("raters/*"))  # per-rater masks are opt-in
    assert manifest["filters"]["exclude_raters"] == 0  # a count: no account id leaves


def test_images_and_masks_round_trip_onto_the_imported_grid(built: Built) -> None:
    case = built.crowd.cases["open1"]
    source = built.crowd.sources["open1"]
    flair = nib.load(built.root / f"imagesTr/{case}_0000.nii.gz")
    expected = canonical(source.images["flair"], "FLAIR")  # type: ignore[index]
    np.testing.assert_allclose(flair.affine, expected.affine, atol=1e-4)
    step = float(flair.dataobj.slope)  # type: ignore[attr-defined]
    np.testing.assert_allclose(np.asarray(flair.dataobj), np.asarray(expected.dataobj), atol=step)
    hard = np.asarray(nib.load(built.root / f"hard/{case}.nii.gz").dataobj)
    soft = nib.load(built.root / f"soft/{case}.nii.gz")
    label = np.asarray(nib.load(built.root / f"labelsTr/{case}.nii.gz").dataobj)
    labelled = np.asarray(nib.load(built.root / f"labelled/{case}.nii.gz").dataobj)
    reference = np.asarray(canonical(source.reference, "mask").dataobj) > 0  # type: ignore[arg-type]
    assert np.allclose(soft.affine, flair.affine)
    assert soft.dataobj.slope == pytest.approx(1 / 255)  # type: ignore[attr-defined]
    with Session(built.engine) as session:
        project = session.get_one(Project, built.crowd.project_id)
        fused = list(usable_labels(session, project.id or 0))
    mine = [f for f in fused if f.slice_.case_id == _case_id(built, case)]
    assert mine
    # Each fused slice, taken back to display geometry, is the fused label the API serves;
    # the crowd drew the reference, so the hard mask is the reference there, voxel for voxel.
    for f in mine:
        s = f.slice_
        shown = to_display(hard[s.crop_x0 : s.crop_x1, s.crop_y0 : s.crop_y1, s.index])
        np.testing.assert_array_equal(shown, read_soft(built.storage, f.soft_key) >= 0.5)
        np.testing.assert_array_equal(hard[:, :, s.index], reference[:, :, s.index])
    # Partial labels: exactly the unlabelled slices carry nnU-Net's ignore label.
    slices = {f.slice_.index for f in mine}
    for z in range(label.shape[2]):
        if z in slices:
            assert set(np.unique(label[:, :, z])) <= {0, 1}
            assert labelled[:, :, z].all()
        else:
            assert (label[:, :, z] == 2).all()
            assert not labelled[:, :, z].any()


def _case_id(built: Built, public_id: str) -> int:
    from backend.imaging.models import Case

    with Session(built.engine) as session:
        return session.exec(select(Case.id).where(Case.public_id == public_id)).one() or 0


def test_checksums_and_a_second_build_are_identical(built: Built) -> None:
    sums = (built.root / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == len([p for p in built.root.rglob("*") if p.is_file()]) - 1
    for line in sums:
        digest, path = line.split("  ", 1)
        assert hashlib.sha256((built.root / path).read_bytes()).hexdigest() == digest
    with Session(built.engine) as session:
        project = session.get_one(Project, built.crowd.project_id)
        plan = make_plan(session, project, Filters())
    # Built again from scratch where it lies (the files are the release's: the same bytes).
    built.storage.delete_prefix(f"releases/{built.name}")
    second = builder.build(built.storage, built.name, plan, Filters(), url="http://localhost:8000")
    first = {p: (built.root / p).read_bytes() for p in second.files}
    assert {p: hashlib.sha256(b).hexdigest() for p, b in first.items()} == {
        p: d for p, (_s, d) in second.files.items()
    }
    assert (built.root / "README.md").read_text().count("ignore") >= 2


def test_bad_requests_are_refused(built: Built) -> None:
    with Session(built.engine) as session:
        with pytest.raises(NotFound, match="No project"):
            service.create(session, project_name="nope", name=None, filters=Filters(), actor=None)
        with pytest.raises(Conflict, match="exists already"):
            service.create(
                session, project_name=built.crowd.project, name=built.name, filters=Filters(),
                actor=None,
            )  # fmt: skip
        with pytest.raises(InvalidInput, match="No case"):
            service.create(
                session, project_name=built.crowd.project, name="x", filters=Filters(min_labels=9),
                actor=None,
            )  # fmt: skip
        # A name that differs only in case is taken too (the folders would collide).
        with pytest.raises(Conflict, match="differ in more than case"):
            service.create(
                session, project_name=built.crowd.project, name=built.name.upper(),
                filters=Filters(), actor=None,
            )  # fmt: skip
        # Raters to leave out must have answered in the project: no made-up or huge ids
        # counted in the README as left out.
        with pytest.raises(InvalidInput, match="never answered") as refused:
            service.create(
                session, project_name=built.crowd.project, name="x",
                filters=Filters(exclude_raters=(built.crowd.volunteers[0], 10**12)), actor=None,
            )  # fmt: skip
        assert refused.value.code == "unknown_rater"
        for bad in ("../x", "abc\n", "x" * 65):
            with pytest.raises(InvalidInput, match="release name"):
                service.create(
                    session, project_name=built.crowd.project, name=bad, filters=Filters(),
                    actor=None,
                )  # fmt: skip


@pytest.fixture
def api(built: Built, module_pg_url: str, settings_env: pytest.MonkeyPatch) -> Iterator[TestClient]:
    settings = Settings(database_url=module_pg_url, storage_url=built.storage.url)
    with TestClient(create_app(settings, engine=built.engine)) as client:
        yield client


def _token(engine: Engine, role: UserRole, scopes: list[TokenScope] | None) -> dict[str, str]:
    from backend.auth import service as auth

    with transaction(engine) as session:
        email = f"{role.value}-{len(scopes or [])}-{np.random.randint(1 << 30)}@example.org"
        user = auth.create_user(session=session, email=email, password="x" * 12, role=role)
        session.flush()
        secret = create_token(session, user, scopes=scopes)
    return {"Authorization": f"Bearer {secret}"}


def test_api_reads_need_the_releases_scope_and_downloads_resume(
    built: Built, api: TestClient
) -> None:
    reader = _token(built.engine, UserRole.engineer, [TokenScope.releases])
    plain = _token(built.engine, UserRole.engineer, [TokenScope.read, TokenScope.tasks])
    volunteer = _token(built.engine, UserRole.volunteer, [TokenScope.releases])
    assert api.get("/api/releases").status_code == 401
    assert api.get("/api/releases", headers=plain).status_code == 403
    assert api.get("/api/releases", headers=volunteer).status_code == 403
    listed = api.get("/api/releases", headers=reader).json()
    assert [r["name"] for r in listed] == [built.name]
    assert listed[0]["stats"]["cases"] == 3
    files = api.get(f"/api/releases/{built.name}/files", headers=reader).json()
    sizes = {f["path"]: f["size"] for f in files}
    # One file, whole and in two resumed parts.
    path = f"imagesTr/{built.crowd.cases['open1']}_0000.nii.gz"
    whole = api.get(f"/api/releases/{built.name}/files/{path}", headers=reader)
    assert whole.status_code == 200
    assert whole.content == (built.root / path).read_bytes()
    tag = whole.headers["etag"]
    part = api.get(
        f"/api/releases/{built.name}/files/{path}", headers={**reader, "Range": "bytes=0-99"}
    )
    assert (part.status_code, len(part.content)) == (206, 100)
    rest = api.get(
        f"/api/releases/{built.name}/files/{path}",
        headers={**reader, "Range": "bytes=100-", "If-Range": tag},
    )
    assert rest.headers["content-range"] == f"bytes 100-{sizes[path] - 1}/{sizes[path]}"
    assert part.content + rest.content == whole.content
    cached = api.get(
        f"/api/releases/{built.name}/files/{path}", headers={**reader, "If-None-Match": tag}
    )
    assert cached.status_code == 304
    beyond = api.get(
        f"/api/releases/{built.name}/files/{path}", headers={**reader, "Range": "bytes=999999999-"}
    )
    assert (beyond.status_code, beyond.headers["content-range"]) == (416, f"bytes */{sizes[path]}")
    huge = api.get(
        f"/api/releases/{built.name}/files/{path}",
        headers={**reader, "Range": "bytes=0-" + "9" * 5000},
    )
    assert huge.status_code == 206  # read as "to the end", not a server error
    assert huge.content == whole.content
    weak = api.get(
        f"/api/releases/{built.name}/files/{path}",
        headers={**reader, "If-None-Match": f'"x", W/{tag}'},
    )
    assert weak.status_code == 304
    assert api.get(f"/api/releases/{built.name}/files/../x", headers=reader).status_code == 404
    # A range whose last byte comes before its first is ignored (RFC 9110): the whole file.
    reversed_ = api.get(
        f"/api/releases/{built.name}/files/{path}", headers={**reader, "Range": "bytes=10-5"}
    )
    assert (reversed_.status_code, reversed_.content) == (200, whole.content)
    # The whole release as a tar, resumed after its first 30 000 bytes.
    archive = api.get(f"/api/releases/{built.name}/archive.tar", headers=reader)
    assert archive.status_code == 200
    size = int(archive.headers["content-length"])
    assert size == len(archive.content)
    head = api.get(
        f"/api/releases/{built.name}/archive.tar", headers={**reader, "Range": "bytes=0-29999"}
    )
    tail = api.get(
        f"/api/releases/{built.name}/archive.tar",
        headers={**reader, "Range": "bytes=30000-", "If-Range": archive.headers["etag"]},
    )
    assert head.content + tail.content == archive.content
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        names = tar.getnames()
        assert sorted(n.split("/", 1)[1] for n in names) == sorted(sizes)
        member = tar.extractfile(f"{built.name}/{path}")
        assert member is not None
        assert member.read() == whole.content
    with Session(built.engine) as session:
        downloads = session.exec(
            select(AuditEntry).where(AuditEntry.action == AuditAction.download)
        ).all()
        assert {d.detail["what"] for d in downloads} >= {path, "archive.tar"}
        assert (
            session.exec(select(AuditEntry).where(AuditEntry.action == AuditAction.release)).first()
            is not None
        )


def test_one_name_asked_for_at_once_is_one_release_and_conflicts(
    built: Built, api: TestClient, module_pg_url: str
) -> None:
    """Six engineers' requests for one new name (in case variants) at the same moment: one
    202, the rest 409 release_name_taken, never a 500; one row."""
    from concurrent.futures import ThreadPoolExecutor

    headers = [_token(built.engine, UserRole.engineer, None) for _ in range(6)]
    names = ["race-a", "RACE-A", "race-a", "Race-A", "race-a", "race-A"]
    barrier = threading.Barrier(6)

    def ask(n: int) -> tuple[int, str]:
        barrier.wait()
        got = api.post(
            "/api/releases", json={"project": built.crowd.project, "name": names[n]},
            headers=headers[n],
        )  # fmt: skip
        return got.status_code, got.json().get("code", "")

    with ThreadPoolExecutor(6) as pool:
        answers = sorted(pool.map(ask, range(6)))
    assert answers == [(202, "")] + [(409, "release_name_taken")] * 5, answers
    with Session(built.engine) as session:
        rows = session.exec(select(Release).where(sa.func.lower(Release.name) == "race-a")).all()
        assert len(rows) == 1
        for row in rows:  # not built here: leave the module's other tests one release
            session.delete(row)
        session.commit()


def test_only_admins_leave_raters_out_and_rater_ids_are_not_account_order(
    built: Built, api: TestClient
) -> None:
    engineer = _token(built.engine, UserRole.engineer, None)
    admin = _token(built.engine, UserRole.admin, None)
    body = {"project": built.crowd.project, "name": "ex-1",
            "exclude_raters": [built.crowd.volunteers[0]]}  # fmt: skip
    refused = api.post("/api/releases", json=body, headers=engineer)
    assert (refused.status_code, refused.json()["code"]) == (403, "admin_only")
    for bad in ([0], [2**31], [2**63], [-1]):
        got = api.post("/api/releases", json={**body, "exclude_raters": bad}, headers=admin)
        assert got.status_code == 422, got.text
    # An admin gets past both checks: every slice here has all three volunteers' answers,
    # so leaving one out leaves no case.
    made = api.post("/api/releases", json=body, headers=admin)
    assert (made.status_code, made.json()["code"]) == (422, "empty_release"), made.text
    # R001... follow a keyed order, not account ids, and differ between releases.
    users = list(range(1, 40))
    first = builder.release_rater_ids(users, "a", "secret")
    assert sorted(first.values()) == [f"R{n:03d}" for n in range(1, 40)]
    assert [first[u] for u in users] != sorted(first.values())
    assert first != builder.release_rater_ids(users, "b", "secret")
    assert first != builder.release_rater_ids(users, "a", "other secret")
    assert first == builder.release_rater_ids(users, "a", "secret")


def test_a_failed_build_leaves_nothing_and_no_path(built: Built) -> None:
    """A build that cannot write (a file where its folder must go) is marked failed, its
    files deleted, and its reason names no server path."""
    built.storage.put("releases/failme/imagesTs", b"in the way")
    with transaction(built.engine) as session:
        made = service.create(
            session, project_name=built.crowd.project, name="failme", filters=Filters(),
            actor=None,
        )  # fmt: skip
        release_id = made.id or 0
    with pytest.raises(OSError, match="imagesTs"):  # a file where a folder goes
        service.run(built.engine, built.storage, release_id)
    with Session(built.engine) as session:
        failed = service.get(session, "failme")
        assert failed.status is ReleaseStatus.failed
        assert "/" not in (failed.error or "")
        assert service.files_of(session, release_id) == []
        with pytest.raises(Conflict, match="failed"):
            service.get(session, "failme", served=True)
    assert built.storage.list("releases/failme") == []


def test_withdrawing_a_case_supersedes_the_release(built: Built, api: TestClient) -> None:
    """Last: it withdraws a case of the shared release."""
    from backend.privacy import service as privacy

    reader = _token(built.engine, UserRole.admin, [TokenScope.releases])
    with transaction(built.engine) as session:
        _withdrawn, removal = privacy.withdraw_case(
            session, built.storage, public_id=built.crowd.cases["open2"], actor=None,
            reason="owner asked",
        )  # fmt: skip
    removal.delete_files(built.storage)
    detail = api.get(f"/api/releases/{built.name}", headers=reader).json()
    assert detail["status"] == "superseded"
    assert "withdrawn" in detail["error"]
    gone = api.get(f"/api/releases/{built.name}/archive.tar", headers=reader)
    assert (gone.status_code, gone.json()["code"]) == (409, "release_superseded")
    assert built.storage.list(f"releases/{built.name}") == []
    with Session(built.engine) as session:
        user = session.exec(select(User)).first()
        assert user is not None
