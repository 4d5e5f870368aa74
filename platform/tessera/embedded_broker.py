"""The embedded broker: kombu's file-system transport, with each message written whole before a
worker can take it.

kombu's own transport writes a message straight into its final name, and a worker that lists
the folder in that moment takes the file still empty: its consumer dies on the JSON
("Unrecoverable error: JSONDecodeError"), and the worker with it (seen under the bursts of
bench/pipeline.py). Here a message is written under a name no queue reads, then renamed into
place, which a reader sees whole or not at all."""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps

# Not "<time>_<id>.<queue>.msg": the transport's readers pass it by.
INCOMING_PREFIX = ".incoming-"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        incoming = os.path.join(self.data_folder_out, f"{INCOMING_PREFIX}{name}")
        try:
            with open(incoming, "wb") as out:
                out.write(dumps(payload).encode())
            os.replace(incoming, final)
        except OSError as error:
            raise ChannelError(f"Cannot add file {final!r} to directory") from error


class Transport(filesystem.Transport):
    Channel = Channel
