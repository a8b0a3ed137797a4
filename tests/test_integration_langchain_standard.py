"""LangChain's own standard vector store suite (langchain-tests), run on VJson.

None of the standard tests is overridden: the class only supplies the empty
store each test starts from.
"""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")
pytest.importorskip("pytest_asyncio")

from langchain_tests.integration_tests import VectorStoreIntegrationTests  # noqa: E402

from vjson.integrations.langchain import VJson  # noqa: E402

# The suite's async tests carry no marker (they expect asyncio_mode=auto); this
# module's conftest hook marks its coroutine tests, so the rest of the test
# suite keeps pytest-asyncio's strict mode.
ASYNC_AUTO = True


class TestVJsonStandard(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self, tmp_path):
        store = VJson(tmp_path / "db", embedding=self.get_embeddings())
        try:
            yield store
        finally:
            store.close()

    @property
    def has_get_by_ids(self) -> bool:
        return True
