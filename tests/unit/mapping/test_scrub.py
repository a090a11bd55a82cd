"""Personal data in free text (a response body quoted in a reason) is masked, also where the text is cut."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapping.privacy import scrub_excerpt, scrub_text

EMAIL = "jdoe@domain.com"
IPV4 = "234.192.4.75"
IPV6 = "2001:db8:85a3::8a2e:370:7334"


class TestIpv6InFreeText:
    @pytest.mark.parametrize(
        ("text", "kept"),
        [
            (f"client {IPV6} blocked", "2001:db8:x:x:x:x:x:x"),
            (f"client [{IPV6}]:443 blocked", "2001:db8:x:x:x:x:x:x"),
            (f'{{"ip":"{IPV6}"}}', "2001:db8:x:x:x:x:x:x"),
            ("from fe80::1ff:fe23:4567:890a, retry", "fe80:0:x:x:x:x:x:x"),
            ("addr:2001:db8::1.", "2001:db8:x:x:x:x:x:x"),
        ],
    )
    def test_an_ipv6_address_is_masked_to_its_network_part(self, text: str, kept: str) -> None:
        # Given a response that quotes a customer's IPv6 address, When it is scrubbed
        scrubbed = scrub_text(text)
        # Then the address is gone and only its first two groups remain
        for private in ("8a2e", "7334", "890a"):
            assert private not in scrubbed
        assert kept in scrubbed

    @pytest.mark.parametrize("text", ["at 10:30:00 UTC", "mac 00:1a:2b:3c:4d:5e", "ratio 3:2"])
    def test_times_and_other_colon_words_are_left_alone(self, text: str) -> None:
        assert scrub_text(text) == text


class TestCutText:
    def test_an_email_past_the_excerpt_limit_is_masked_not_cut_into_a_fragment(self) -> None:
        # Given a body whose 200th character falls inside an email address
        text = "x" * 190 + f" {EMAIL} rest"
        # When the excerpt is made
        excerpt = scrub_excerpt(text, 200)
        # Then no start of the address survives at the cut edge
        assert "jdo" not in excerpt
        assert len(excerpt) <= 201

    def test_an_email_cut_by_the_read_limit_leaves_no_fragment(self) -> None:
        # Given the first bytes of a body, read up to a limit that fell inside an address
        text = '{"error": "customer jdoe@dom'
        # When it is scrubbed as a cut text, Then the fragment is dropped
        excerpt = scrub_excerpt(text, 200, cut=True)
        assert "jdoe" not in excerpt
        assert excerpt.startswith('{"error": "customer')

    @pytest.mark.parametrize("fragment", ["234.192.4.", "234.192.4", "2001:db8:85a3:0:0:8a2e:37", "jdoe@"])
    def test_an_address_cut_at_the_edge_leaves_no_fragment(self, fragment: str) -> None:
        excerpt = scrub_excerpt(f"blocked {fragment}", 200, cut=True)
        assert excerpt == "blocked"

    def test_a_text_within_the_limit_is_only_masked(self) -> None:
        text = f"customer {EMAIL} from {IPV4} and {IPV6} blocked"
        assert scrub_excerpt(text, 200) == scrub_text(text)
        assert "j***@d***.com" in scrub_text(text)

    @given(
        prefix=st.text(alphabet=" xy,:.", max_size=240),
        address_and_secret=st.sampled_from(
            [(EMAIL, "jd"), (IPV4, "192.4"), (IPV6, "db8:8"), ("Jane.Doe+tag@Example.CO.UK", "Jan")]
        ),
        limit=st.integers(min_value=1, max_value=260),
        cut=st.booleans(),
    )
    @settings(max_examples=60, derandomize=True, deadline=None)
    def test_no_cut_anywhere_leaves_a_recognisable_piece_of_the_address(
        self, prefix: str, address_and_secret: tuple[str, str], limit: int, cut: bool
    ) -> None:
        # Given an address somewhere in a text, the text possibly already cut after it, then cut anywhere
        address, secret = address_and_secret
        text = f"{prefix} {address} tail"
        for read in (text, text[: len(prefix) + 1 + len(address) // 2]):
            # When the excerpt is made, Then nothing past the masked part of the address survives
            excerpt = scrub_excerpt(read, limit, cut=cut or read != text)
            assert secret not in excerpt
