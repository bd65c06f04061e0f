"""Where a study's stores live, as the driver records them."""

from __future__ import annotations

from ablation.track import stores


def test_the_default_optuna_storage_beside_a_relative_store_is_recorded_absolute(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(stores.OPTUNA_STORAGE_ENV, raising=False)
    storage, note = stores.optuna_storage("sqlite:///mlflow.db", None, None)
    assert storage == f"sqlite:///{tmp_path.resolve() / 'optuna.db'}" and note is None
    storage, _ = stores.optuna_storage("sqlite:///sub/mlflow.db", None, None)
    assert storage == f"sqlite:///{tmp_path.resolve() / 'sub' / 'optuna.db'}"
    # What the user names is used as named.
    assert (
        stores.optuna_storage("sqlite:///mlflow.db", "sqlite:///o.db", None)[0] == "sqlite:///o.db"
    )
    storage, note = stores.optuna_storage("http://127.0.0.1:5000", None, None)
    assert storage == "sqlite:///optuna.db" and "server" in note
