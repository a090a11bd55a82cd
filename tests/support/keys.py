"""The Refersion key pair every test configures, and the values the relay must never write anywhere."""

from __future__ import annotations

PUBLIC_KEY = "pub_test_4f9a"
SECRET_KEY = "sec_test_SUPERSECRET_7c21"

# The secret key, and the seed's raw email and IP: checked absent from the logs after every test.
NEVER_LOGGED = (SECRET_KEY, "jdoe@domain.com", "234.192.4.75")
