"""Finding runs in MLflow: every match of a search, through MLflow's page tokens."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

PAGE = 1000  # MLflow's largest page for search_runs


class RunStore(Protocol):
    """What the read side asks of a store: an MlflowClient, or the light commands'
    `SqliteReader` (ablation.track.reader), which answers the same calls without MLflow."""

    def get_experiment_by_name(self, name: str) -> Any: ...

    def search_experiments(self) -> Sequence[Any]: ...

    def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str = "",
        *,
        max_results: int = ...,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> Any: ...

    def get_run(self, run_id: str) -> Any: ...

    def get_metric_history(self, run_id: str, key: str) -> Sequence[Any]: ...

    def download_artifacts(self, run_id: str, path: str, dst_path: str) -> str: ...


def search_runs(
    client: RunStore,
    experiment_ids: Sequence[str],
    filter_string: str,
    *,
    order_by: Sequence[str] | None = None,
    limit: int | None = None,
) -> Iterator[Any]:
    """The active runs that match (MLflow's default view), in `order_by` order, at most `limit`
    of them (MLflow `Run`s, or the reader's look-alikes)."""
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
