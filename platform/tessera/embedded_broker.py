"""The embedded broker: kombu's file-system transport, with each message written whole before a
worker can take it.

kombu's own transport writes a message straight into its final name, and a worker that lists
the folder in that moment takes the file still empty: its consumer dies on the JSON
("Unrecoverable error: JSONDecodeError"), and the worker with it (seen under the bursts of
bench/pipeline.py). Here a message is written as the local blob store writes a file (under a
name no queue reads, then renamed into place), which a reader sees whole or not at all."""

import uuid
from pathlib import Path
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps

from tessera.storage import LocalBlobStore


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        try:
            with LocalBlobStore(Path(self.data_folder_out)).writer(name) as out:
                out.write(dumps(payload).encode())
        except OSError as error:
            raise ChannelError(f"Cannot add file {name!r} to {self.data_folder_out}") from error


class Transport(filesystem.Transport):
    Channel = Channel
