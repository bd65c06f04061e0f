"""Finding runs in MLflow: every match of a search, through MLflow's page tokens."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

PAGE = 1000  # MLflow's largest page for search_runs


def search_runs(
    client: Any,
    experiment_ids: Sequence[str],
    filter_string: str,
    *,
    order_by: Sequence[str] | None = None,
    limit: int | None = None,
) -> Iterator[Any]:
    """The active runs that match (MLflow's default view), in `order_by` order, at most `limit`
    of them. `client` is an MlflowClient or the light commands' `SqliteReader`."""
    token = None
    left = limit
    while left is None or left > 0:
        page = client.search_runs(
            list(experiment_ids),
            filter_string=filter_string,
            max_results=PAGE if left is None else min(PAGE, left),
            order_by=list(order_by or []),
            page_token=token,
        )
        yield from page
        if left is not None:
            left -= len(page)
        token = page.token
        if not token:
            return
