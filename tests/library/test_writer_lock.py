"""One writer per store: a second one is refused at once with a sentence naming the first."""

from __future__ import annotations

import os

import pytest

from recsys.errors import RecsysError
from recsys.settings import store_urls
from recsys.writer_lock import hold_store


def test_a_second_writer_is_refused_until_the_first_is_done(store_base):
    url = store_urls(store_base)["raw"]
    with hold_store(url):
        with pytest.raises(RecsysError, match="is in use by") as refused:
            with hold_store(url):
                pass
        message = str(refused.value)
        assert message.endswith(": wait for it to finish, or stop it.") and message.count("\n") == 0
        if "postgresql" not in url:
            assert f"process {os.getpid()} since " in message
        else:
            assert "PostgreSQL session " in message
    with hold_store(url):  # released: the next writer gets it
        pass
