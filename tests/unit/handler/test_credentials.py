"""The Refersion key pair's shape check (handler.credentials): values never shown, problems named."""

from __future__ import annotations

import pytest

from handler.credentials import CredentialsError, KeyPair, key_pair_from_secret


class TestKeyPair:
    def test_a_well_formed_secret_gives_the_pair(self) -> None:
        pair = key_pair_from_secret({"public_key": "pub_1", "secret_key": "sec_1"}, "s")
        assert pair == KeyPair("pub_1", "sec_1")

    def test_the_pair_never_shows_its_values(self) -> None:
        pair = KeyPair("pub_1", "sec_VERYSECRET")
        assert "sec_VERYSECRET" not in repr(pair)
        assert "sec_VERYSECRET" not in str(pair)
        assert "sec_VERYSECRET" not in f"{pair}"

    @pytest.mark.parametrize(
        ("secret", "problem"),
        [
            ("just a string", "must be a JSON object"),
            ({"public_key": "pub_1"}, "secret_key is missing"),
            ({"public_key": "", "secret_key": "sec"}, "public_key must be a non-empty string"),
            ({"public_key": "pub", "secret_key": "sec\r\nX-Injected: 1"}, "not allowed in an HTTP header"),
            ({"public_key": "pub key", "secret_key": "sec"}, "not allowed in an HTTP header"),
        ],
    )
    def test_malformed_secrets_are_named_without_their_values(self, secret: object, problem: str) -> None:
        with pytest.raises(CredentialsError, match=problem) as caught:
            key_pair_from_secret(secret, "refersion/keys")
        assert "X-Injected" not in str(caught.value)
        assert "refersion/keys" in str(caught.value)
