"""The embedded broker (tessera.embedded_broker): a message is seen by the workers only once it
is written whole, so none reads half of one (kombu's own transport let a worker take a file
still empty, and its consumer died on the JSON)."""

import os

from kombu import Connection


def test_a_message_is_seen_by_readers_only_once_it_is_whole(tmp_path, monkeypatch):
    folder = tmp_path / "queue"
    folder.mkdir()
    connection = Connection(
        "filesystem://",
        transport="tessera.embedded_broker:Transport",
        transport_options={"data_folder_in": str(folder), "data_folder_out": str(folder)},
    )
    channel = connection.channel()
    waiting_while_written = []
    replace = os.replace

    def renamed_into_place(source, target) -> None:
        waiting_while_written.append(channel._size("gpu"))  # what a worker would see now
        with open(source, "rb") as written:
            assert written.read(), "written whole before it is renamed"
        replace(source, target)

    monkeypatch.setattr(os, "replace", renamed_into_place)
    channel._put("gpu", {"body": "a job"})
    assert waiting_while_written == [0], "no reader saw the message before it was whole"
    assert channel._size("gpu") == 1
    assert channel._get("gpu") == {"body": "a job"}
    assert list(folder.iterdir()) == [], "nothing half-written left behind"
    connection.release()
