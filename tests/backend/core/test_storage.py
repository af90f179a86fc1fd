"""Blob storage behind fsspec: the local default and any other fsspec backend behave alike."""

from pathlib import Path

import pytest

from backend.core.storage import BlobNotFound, Storage, StorageKeyInvalid


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "file":
        return Storage((tmp_path / "blobs").as_uri())
    return Storage(f"memory://mscrowd-test-{tmp_path.name}")


def test_put_get_list_and_delete(store: Storage) -> None:
    store.put("cases/ab/axial/0001/flair.png", b"one")
    store.put("cases/ab/axial/0002/flair.png", b"two")
    store.put("cases/cd/volume.nii.gz", b"three")
    store.put("cases/ab/axial/0001/flair.png", b"one again")  # replacing is fine
    assert store.get("cases/ab/axial/0001/flair.png") == b"one again"
    assert store.exists("cases/cd/volume.nii.gz")
    assert store.list("cases/ab") == [
        "cases/ab/axial/0001/flair.png",
        "cases/ab/axial/0002/flair.png",
    ]
    store.delete_prefix("cases/ab")
    assert store.list("cases/ab") == []
    assert store.list("cases") == ["cases/cd/volume.nii.gz"]
    store.delete("cases/cd/volume.nii.gz")
    store.delete("cases/cd/volume.nii.gz")  # deleting what is gone is not an error
    with pytest.raises(BlobNotFound):
        store.get("cases/cd/volume.nii.gz")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../escape", "a//b", "a/./b", "a/../../b"])
def test_keys_cannot_escape_the_root(store: Storage, key: str) -> None:
    with pytest.raises(StorageKeyInvalid):
        store.put(key, b"x")


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = Storage((tmp_path / "blobs").as_uri())
    store.put("a/b.png", b"data")
    assert sorted(p.name for p in (tmp_path / "blobs" / "a").iterdir()) == ["b.png"]
