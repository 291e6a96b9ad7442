import pytest

from omnibyte.modality import Modality
from omnibyte.vocab import VOCAB_SIZE, Boundary, ControlToken, document_tokens, split_control_tokens


def test_control_tokens_sit_above_the_byte_values():
    assert min(ControlToken) == 256 and max(ControlToken) == VOCAB_SIZE - 1


def test_control_tokens_become_boundaries_between_bytes():
    data, boundaries = split_control_tokens([65, ControlToken.IMAGE, 66, 67, ControlToken.DOC_END])
    assert data == b"ABC"
    assert boundaries == [Boundary(1, ControlToken.IMAGE), Boundary(3, ControlToken.DOC_END)]
    assert boundaries[0].modality is Modality.IMAGE and boundaries[1].modality is None


def test_split_offsets_continue_across_chunks():
    _, boundaries = split_control_tokens([1, 2, ControlToken.TEXT], offset=100)
    assert boundaries == [Boundary(102, ControlToken.TEXT)]


def test_tokens_outside_the_vocabulary_are_refused():
    with pytest.raises(ValueError, match="outside the vocabulary"):
        split_control_tokens([VOCAB_SIZE])


def test_a_document_tags_each_part_with_its_modality():
    tokens = document_tokens([(Modality.TEXT, b"hi"), (Modality.IMAGE, b""), (None, b"\x00")], end=True)
    assert tokens == [ControlToken.DOC_START, ControlToken.TEXT, 104, 105, ControlToken.IMAGE, 0, ControlToken.DOC_END]


def test_binary_has_no_tag():
    with pytest.raises(ValueError):
        document_tokens([(Modality.BINARY, b"x")])


def test_join_control_tokens_inverts_split():
    from omnibyte.vocab import join_control_tokens

    tokens = [ControlToken.DOC_START, ControlToken.TEXT, 65, 66, ControlToken.IMAGE, 1, 2, 3, ControlToken.DOC_END]
    data, boundaries = split_control_tokens(tokens)
    assert join_control_tokens(data, boundaries) == [int(t) for t in tokens]
    import pytest

    with pytest.raises(ValueError, match="outside"):
        join_control_tokens(b"ab", [Boundary(3, ControlToken.DOC_END)])
