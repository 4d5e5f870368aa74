"""Keeps DICOM uploads and zipped series in memory, whatever their size.

Django spools a large upload to a temporary file; for DICOM that file would be the original,
identifiable image on disk before de-identification. This handler replaces Django's
temporary-file handler: it looks at an upload's first bytes before it creates any file, keeps
DICOM (and zip) in memory, and spools everything else as Django would. The request size limit
still bounds what is held in memory.
"""

import io

from django.core.files.uploadedfile import InMemoryUploadedFile, TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler

_HEADER_BYTES = 132
_DICOM_MAGIC = (slice(128, 132), b"DICM")
_ZIP_MAGIC = (slice(0, 4), b"PK\x03\x04")


class OriginalsInMemoryUploadHandler(TemporaryFileUploadHandler):
    def new_file(self, *args, **kwargs) -> None:
        FileUploadHandler.new_file(self, *args, **kwargs)  # no temporary file yet
        self.file = None
        self._head = b""
        self._in_memory: io.BytesIO | None = None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if self._in_memory is not None:
            self._in_memory.write(raw_data)
        elif self.file is not None:
            self.file.write(raw_data)
        else:
            # Chunks are 64 KiB, so the first one nearly always decides; a short first chunk
            # (a slow client) is held until the header is in.
            self._head += raw_data
            if len(self._head) >= _HEADER_BYTES:
                self._decide()
        return None

    def file_complete(self, file_size: int) -> InMemoryUploadedFile | TemporaryUploadedFile:
        if self._in_memory is None and self.file is None:
            self._decide()  # shorter than a DICOM header
        if self._in_memory is None:
            return super().file_complete(file_size)
        self._in_memory.seek(0)
        return InMemoryUploadedFile(
            file=self._in_memory,
            field_name=self.field_name,
            name=self.file_name,
            content_type=self.content_type,
            size=file_size,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )

    def upload_interrupted(self) -> None:
        if self.file is not None:
            super().upload_interrupted()

    def _decide(self) -> None:
        head, self._head = self._head, b""
        if any(head[where] == magic for where, magic in (_DICOM_MAGIC, _ZIP_MAGIC)):
            self._in_memory = io.BytesIO()
            self._in_memory.write(head)
            return
        self.file = TemporaryUploadedFile(
            self.file_name, self.content_type, 0, self.charset, self.content_type_extra
        )
        self.file.write(head)
