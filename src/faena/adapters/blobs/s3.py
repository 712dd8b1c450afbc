"""A BlobStore on S3-compatible object storage (AWS S3, MinIO, Ceph, moto …), for several
servers sharing artefacts.

boto3 runs in threads: it is the SDK every S3-compatible service is tested against, and the
async wrappers (aiobotocore) pin exact botocore versions and pull in aiohttp for no gain at
this request rate. Credentials come the standard AWS way (``AWS_ACCESS_KEY_ID`` … or a
profile or instance role), read by boto3 itself. An upload is spooled (memory, then a
temporary file) while it is counted and hashed, then sent with a multipart upload when large:
S3 makes an object visible only once it is complete, so a reader never sees half a blob.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import tempfile
import threading
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from faena.adapters.blobs.local import check_key
from faena.domain.errors import NotFound, PayloadTooLarge, Unavailable, ValidationError
from faena.ports.blobs import CHUNK, BlobWritten

SPOOL_BYTES = 8 * 1024 * 1024  # uploads up to this size stay in memory while spooled


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None


def parse_s3_url(url: str) -> S3Location:
    """``s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=eu-west-1``."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValidationError(f"bad blob URL {url!r}: expected s3://BUCKET[/PREFIX][?endpoint=URL]")
    query = parse_qs(parts.query)
    unknown = set(query) - {"endpoint", "region"}
    if unknown:
        raise ValidationError(f"bad blob URL {url!r}: unknown option(s) {sorted(unknown)}")
    endpoint = query.get("endpoint", [None])[0]
    if endpoint is not None and urlsplit(endpoint).scheme not in {"http", "https"}:
        raise ValidationError(f"bad blob URL {url!r}: endpoint must be an http(s) URL")
    prefix = parts.path.strip("/")
    return S3Location(
        bucket=parts.netloc,
        prefix=f"{prefix}/" if prefix else "",
        endpoint=endpoint,
        region=query.get("region", [None])[0],
    )


class S3BlobStore:
    name = "s3"

    def __init__(
        self,
        location: S3Location,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> None:
        self.location = location
        self._credentials = (access_key, secret_key)
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3BlobStore({self.location.bucket!r}, prefix={self.location.prefix!r})"

    def _s3(self) -> Any:
        """The boto3 client, made on first use (boto3 clients are thread-safe)."""
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                access, secret = self._credentials
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.location.endpoint,
                    region_name=self.location.region or "us-east-1",
                    aws_access_key_id=access,
                    aws_secret_access_key=secret,
                    config=Config(
                        connect_timeout=5,
                        read_timeout=30,
                        retries={"max_attempts": 3, "mode": "standard"},
                        s3={"addressing_style": "path"},
                    ),
                )
            return self._client

    def _key(self, key: str) -> str:
        return self.location.prefix + check_key(key)

    async def _call(self, doing: str, key: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one boto3 call in a thread; a missing object is NotFound, anything else the
        service or network says is Unavailable with the reason."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except Exception as e:
            raise _translated(e, doing, key) from None

    async def put(self, key: str, data: bytes) -> BlobWritten:
        full = self._key(key)
        await self._call(
            "writing", key, lambda: self._s3().put_object(Bucket=self.location.bucket, Key=full,
                                                           Body=data)
        )  # fmt: skip
        return BlobWritten(size=len(data), sha256=hashlib.sha256(data).hexdigest())

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int
    ) -> BlobWritten:
        full = self._key(key)
        digest = hashlib.sha256()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"blob larger than {max_bytes} bytes")
                digest.update(chunk)
                if size > SPOOL_BYTES:
                    await asyncio.to_thread(spool.write, chunk)
                else:
                    spool.write(chunk)
            spool.seek(0)
            await self._call(
                "writing", key, lambda: self._s3().upload_fileobj(spool, self.location.bucket,
                                                                   full)
            )  # fmt: skip
        return BlobWritten(size=size, sha256=digest.hexdigest())

    async def get(self, key: str) -> bytes:
        full = self._key(key)

        def read() -> bytes:
            body = self._s3().get_object(Bucket=self.location.bucket, Key=full)["Body"]
            with contextlib.closing(body):
                data: bytes = body.read()
            return data

        data: bytes = await self._call("reading", key, read)
        return data

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        full = self._key(key)
        body = await self._call(
            "reading", key, lambda: self._s3().get_object(Bucket=self.location.bucket, Key=full)
        )
        stream = body["Body"]
        try:
            while chunk := await self._call("reading", key, stream.read, CHUNK):
                yield chunk
        finally:
            stream.close()

    async def delete(self, key: str) -> None:
        full = self._key(key)
        await self._call(
            "deleting", key, lambda: self._s3().delete_object(Bucket=self.location.bucket, Key=full)
        )

    async def exists(self, key: str) -> bool:
        full = self._key(key)
        try:
            await self._call(
                "checking", key,
                lambda: self._s3().head_object(Bucket=self.location.bucket, Key=full),
            )  # fmt: skip
        except NotFound:
            return False
        return True

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (tests, first start against MinIO)."""

        def make() -> None:
            s3 = self._s3()
            try:
                s3.head_bucket(Bucket=self.location.bucket)
            except Exception as e:
                if _status(e) != 404:
                    raise
                s3.create_bucket(Bucket=self.location.bucket)

        await self._call("creating the bucket for", "", make)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)


def _status(e: Exception) -> int | None:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(code) if code is not None else None
    return None


def _translated(e: Exception, doing: str, key: str) -> Exception:
    if isinstance(e, (NotFound, ValidationError, PayloadTooLarge, Unavailable)):
        return e
    status = _status(e)
    code = ""
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    if status == 404 or code in {"NoSuchKey", "404", "NotFound"}:
        return NotFound(f"blob {key!r} not found")
    if code == "NoSuchBucket":
        return Unavailable(f"S3 error {doing} blob {key!r}: the bucket does not exist")
    reason = code or type(e).__name__
    return Unavailable(f"S3 error {doing} blob {key!r}: {reason}: {str(e)[:200]}")
