"""The Ray engine: Ray Data streams a manifest of videos through a pool of captioning actors.

The driver builds a dataset of ``{path, id}`` rows for the videos not yet written, ``map_batches``
hands batches to :class:`RayCaptioner` actors (each loads the model once; one GPU each on GPUs, a
fraction of a CPU each on a CPU machine so the read tasks keep a CPU), and the driver appends each
record to the journal as it streams back. Resuming works as for the local engine: the journal's ids
are left out of the manifest. Inside an actor, the videos of a batch decode ahead of the model.
"""

from __future__ import annotations

from typing import Any

from vidpool.caption.inputs import VideoItem
from vidpool.caption.journal import Journal
from vidpool.caption.runner import Summary, progress_bar
from vidpool.errors import require

__all__ = ["RayCaptioner", "caption_ray"]


class RayCaptioner:
    """A Ray Data actor: ``CaptionWorker`` over batches ``{"path": [...], "id": [...]}`` -> records."""

    def __init__(self, worker_options: dict[str, Any], depth: int = 2, decode_workers: int = 1) -> None:
        from vidpool.caption.worker import CaptionWorker

        self.worker = CaptionWorker(**worker_options)
        self.depth = depth
        self.decode_workers = decode_workers

    def __call__(self, batch: dict[str, Any]) -> Any:
        import pyarrow as pa

        from vidpool.caption.fields import FIELDS
        from vidpool.caption.formats import arrow_schema
        from vidpool.caption.prefetch import prefetch

        items = [VideoItem(path=str(p), id=str(i)) for p, i in zip(batch["path"], batch["id"])]
        rows = []
        for decoded, waited in prefetch(
            items, self.worker.decode, depth=self.depth, workers=self.decode_workers
        ):
            record = self.worker.caption(decoded)
            rows.append({**{k: record[k] for k in FIELDS}, "model_wait_s": waited})
        schema = arrow_schema().append(pa.field("model_wait_s", pa.float64()))
        return pa.Table.from_pylist(rows, schema=schema)


def _init(address: str | None) -> bool:
    """Connect to ``address`` (or start a local Ray) unless connected; whether this call started it."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    return True


def caption_ray(
    todo: list[VideoItem],
    writer: Journal,
    worker_options: dict[str, Any],
    *,
    address: str | None = None,
    actors: int | None = None,
    batch_size: int = 4,
    depth: int = 2,
    decode_workers: int = 1,
    progress: bool = True,
) -> Summary:
    """Caption ``todo`` on Ray, appending each record to ``writer`` as it arrives."""
    import time

    require("ray", "dist", "the Ray engine (--engine ray)")
    import ray

    if not todo:
        return Summary()
    started = _init(address)
    try:
        resources = ray.cluster_resources()
        options = dict(worker_options)
        gpus = int(resources.get("GPU", 0))
        on_gpu = str(options.get("device") or ("cuda" if gpus else "cpu")).startswith("cuda")
        count = actors or (gpus if on_gpu and gpus else 1)
        if on_gpu:
            options["device"] = "cuda"  # Ray gives each actor its own GPU as cuda:0
            remote = {"num_gpus": 1}
        else:
            options["device"] = "cpu"
            # leave half a CPU to the read tasks: whole-CPU actors on a small machine starve them
            cpus = float(resources.get("CPU", 1))
            remote = {"num_cpus": max(0.1, min(1.0, (cpus - 0.5) / count))}
        ds = ray.data.from_items(
            [{"path": i.path, "id": i.id} for i in todo], override_num_blocks=min(len(todo), 64 * count)
        )
        ds = ds.map_batches(
            RayCaptioner,
            fn_constructor_kwargs={
                "worker_options": options,
                "depth": depth,
                "decode_workers": decode_workers,
            },
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=count),
            **remote,
        )
        summary = Summary()
        start = time.perf_counter()
        with progress_bar(len(todo), enabled=progress) as bar:
            # arrow batches as they complete; to_pylist gives plain Python values for the JSON lines
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for record in batch.to_pylist():
                    summary.model_wait_s += float(record.pop("model_wait_s") or 0.0)
                    writer.write(record)
                    summary.add(record)
                    bar.update(1, failed=summary.failed)
        summary.seconds = time.perf_counter() - start
        return summary
    finally:
        if started:
            ray.shutdown()
