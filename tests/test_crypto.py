"""SM4/SM3 against the national standards' example vectors, and the field encryption built on them."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wechat_backend.crypto import DecryptError, KeyRing, hmac_sm3, key_id_of, planned_blind_index_bits, sm3

K1 = bytes(range(16))
K2 = bytes(range(16, 32))
BIDX = bytes(range(32))


def ring(active: str = "k1", bidx: bytes = BIDX, bits: int = 16) -> KeyRing:
    return KeyRing(keys={"k1": K1, "k2": K2}, active_key=active, blind_index_key=bidx, blind_index_bits=bits)


def test_sm4_matches_gbt_32907_example() -> None:
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    assert (enc.update(key) + enc.finalize()).hex() == "681edf34d206965e86b3e94f536e4246"


def test_sm4_matches_gbt_32907_million_rounds_example() -> None:
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    block = key
    for _ in range(1_000_000):
        block = enc.update(block)
    assert block.hex() == "595298c7c6fd271f0402f804c33d3f66"


@pytest.mark.parametrize(
    ("message", "digest"),
    [
        (b"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"),
        (b"abcd" * 16, "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"),
    ],
)
def test_sm3_matches_gbt_32905_examples(message: bytes, digest: str) -> None:
    assert sm3(message).hex() == digest


def test_hmac_sm3_is_keyed() -> None:
    assert hmac_sm3(b"k" * 32, b"x") != hmac_sm3(b"j" * 32, b"x")
    assert len(hmac_sm3(b"k" * 32, b"x")) == 32


def test_sealed_fields_round_trip_and_carry_the_key_id() -> None:
    blob = ring().seal({"name": "刘德华", "id_number": "11010519491231002X"}, "archive:a1")
    assert key_id_of(blob) == "k1"
    assert "刘德华".encode() not in blob and b"11010519491231002X" not in blob
    assert ring().open(blob, "archive:a1") == {"name": "刘德华", "id_number": "11010519491231002X"}


def test_ciphertext_moved_to_another_row_does_not_decrypt() -> None:
    blob = ring().seal({"name": "张三"}, "archive:a1")
    with pytest.raises(DecryptError):
        ring().open(blob, "archive:a2")


def test_tampered_ciphertext_is_refused() -> None:
    blob = bytearray(ring().seal({"name": "张三"}, "archive:a1"))
    blob[-20] ^= 1
    with pytest.raises(DecryptError):
        ring().open(bytes(blob), "archive:a1")


def test_old_key_still_decrypts_after_a_new_key_becomes_active() -> None:
    old = ring("k1").seal({"v": 1}, "x")
    new_ring = ring("k2")
    assert new_ring.open(old, "x") == {"v": 1}
    assert new_ring.needs_rotation(old)
    assert not new_ring.needs_rotation(new_ring.seal({"v": 1}, "x"))


def test_unknown_key_id_is_an_error_not_a_crash() -> None:
    blob = ring().seal({"v": 1}, "x")
    only_k2 = KeyRing(keys={"k2": K2}, active_key="k2", blind_index_key=BIDX)
    with pytest.raises(DecryptError):
        only_k2.open(blob, "x")


def test_two_encryptions_of_the_same_value_differ() -> None:
    assert ring().seal({"v": 1}, "x") != ring().seal({"v": 1}, "x")


def test_blind_index_is_deterministic_truncated_and_purpose_bound() -> None:
    r = ring(bits=16)
    a = r.blind_index("id_number", "11010519491231002X")
    assert a == r.blind_index("id_number", "11010519491231002X")
    assert 0 <= a < 2**16
    assert a != r.blind_index("phone", "11010519491231002X") or a != r.blind_index("phone", "x")
    other_key = ring(bidx=bytes(32))
    values = [f"1380013{i:04d}" for i in range(50)]
    assert [r.blind_index("phone", v) for v in values] != [other_key.blind_index("phone", v) for v in values]


def test_blind_index_width_spreads_values_evenly() -> None:
    r = ring(bits=8)
    buckets = {r.blind_index("phone", f"1380013{i:04d}") for i in range(2000)}
    assert len(buckets) > 240  # 2000 values over 256 buckets: nearly all used


def test_blind_fingerprint_changes_with_key_and_width() -> None:
    assert ring().blind_fingerprint != ring(bidx=bytes(32)).blind_fingerprint
    assert ring(bits=16).blind_fingerprint != ring(bits=18).blind_fingerprint


@pytest.mark.parametrize(("rows", "expected"), [(10**6, (10, 18)), (10**5, (9, 15))])
def test_blind_index_planner_matches_ciphersweet_rule(rows: int, expected: tuple[int, int]) -> None:
    assert planned_blind_index_bits(rows) == expected


def test_keyring_reads_base64_settings() -> None:
    from wechat_backend.config import SecuritySettings

    s = SecuritySettings(
        active_key="k1",
        keys={"k1": base64.b64encode(K1).decode()},
        blind_index_key=base64.b64encode(BIDX).decode(),
    )
    r = KeyRing.from_settings(s)
    assert r.open(ring().seal({"a": 1}, "x"), "x") == {"a": 1}
