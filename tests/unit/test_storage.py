"""tessera.storage: both kinds of store keep a blob whole or not at all, say "missing" the same
way, and list what they hold; a misconfigured storage is refused in words. The S3 store talks to
moto's S3 server over HTTP (in a thread of this process)."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from tessera.storage import LocalBlobStore, S3BlobStore, blob_store

BUCKET = "unit-bucket"


@pytest.fixture
def s3_settings(settings):
    from moto.server import ThreadedMotoServer

    from tests.integration.processes import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    settings.TESSERA_STORAGE = "s3"
    settings.AWS_STORAGE_BUCKET_NAME = BUCKET
    settings.AWS_S3_ENDPOINT_URL = f"http://127.0.0.1:{port}"
    settings.AWS_S3_REGION_NAME = "us-east-1"
    settings.AWS_ACCESS_KEY_ID = "moto"
    settings.AWS_SECRET_ACCESS_KEY = "moto-secret"
    import boto3

    boto3.resource(
        "s3",
        endpoint_url=settings.AWS_S3_ENDPOINT_URL,
        region_name="us-east-1",
        aws_access_key_id="moto",
        aws_secret_access_key="moto-secret",
    ).create_bucket(Bucket=BUCKET)
    yield settings
    server.stop()


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalBlobStore(tmp_path / "area")
    request.getfixturevalue("s3_settings")
    made = blob_store("features")
    assert isinstance(made, S3BlobStore)
    return made


def test_a_blob_written_whole_is_read_back_listed_and_deleted(store):
    with store.writer("ab/cd/blob.npz") as out:
        out.write(b"x" * 100_000)
    assert store.exists("ab/cd/blob.npz")
    with store.open("ab/cd/blob.npz") as blob:
        assert blob.read() == b"x" * 100_000
        blob.seek(0)  # seekable: the content store hashes, then rewinds
    assert list(store.names()) == ["ab/cd/blob.npz"]
    assert list(store.names(under="ab/")) == ["ab/cd/blob.npz"]
    assert list(store.names(under="zz/")) == []
    store.delete("ab/cd/blob.npz")
    store.delete("ab/cd/blob.npz")  # gone already: nothing happens
    assert not store.exists("ab/cd/blob.npz")


def test_a_write_that_fails_halfway_leaves_nothing(store):
    def interrupted() -> None:
        with store.writer("half.bin") as out:
            out.write(b"the first half")
            raise RuntimeError("the source went away")

    with pytest.raises(RuntimeError):
        interrupted()
    assert not store.exists("half.bin")
    assert list(store.names()) == []


def test_a_missing_blob_is_file_not_found_in_both(store):
    with pytest.raises(FileNotFoundError):
        store.open("never/written")


def test_the_bucket_check_writes_and_leaves_nothing(s3_settings):
    blob_store("media").check_writable()
    assert list(blob_store("media").names()) == []


def test_a_misconfigured_storage_is_refused_in_words(settings):
    settings.TESSERA_STORAGE = "nfs"
    with pytest.raises(ImproperlyConfigured, match="'local' or 's3'"):
        blob_store("media")
    settings.TESSERA_STORAGE = "s3"
    settings.AWS_STORAGE_BUCKET_NAME = ""
    with pytest.raises(ImproperlyConfigured, match="AWS_STORAGE_BUCKET_NAME is not set"):
        blob_store("media")
