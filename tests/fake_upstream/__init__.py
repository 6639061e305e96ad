from tests.fake_upstream.embeddings import cosine, embed
from tests.fake_upstream.replies import Reply
from tests.fake_upstream.server import FakeUpstream, RecordedRequest

__all__ = ["FakeUpstream", "RecordedRequest", "Reply", "cosine", "embed"]
