"""Training: the :class:`Trainer` of one run, and the entry points :func:`train` and :func:`load_or_train`.

The trainer builds the run from its config, trains epoch by epoch, evaluates, and writes the metric
rows and checkpoints into the run directory (see :mod:`~nbn_tutorial.train.run_dir`). Under
``torchrun`` it uses DDP (gloo on CPU, NCCL on CUDA); only rank 0 writes files.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import append_text, check_utf8_path, ensure_dir, jsonl_text
from nbn_tutorial.train.builders import (build_datasets, build_loss_for, build_model_for, build_objective,
                                         build_optimizer)
from nbn_tutorial.train.checkpoints import CHECKPOINT_FORMAT, rng_states, set_rng_states, write_checkpoint
from nbn_tutorial.train.config import Config, config_to_dict
from nbn_tutorial.train.config_io import save_config
from nbn_tutorial.train.data_paths import resolve_run_paths
from nbn_tutorial.train.evaluation import count_metrics, evaluate_model
from nbn_tutorial.train.guards import (bad_loss_error, check_finite_model, config_notes, kept_text, loss_ok,
                                       print_notes, record_skipped)
from nbn_tutorial.train.identity import RESUME_REMEDY, check_training_set, data_identity
from nbn_tutorial.train.lock import folder_lock
from nbn_tutorial.train.metric_files import (METRIC_COLUMNS, append_metric_row, format_metrics, read_metric_rows,
                                             truncate_metrics)
from nbn_tutorial.train.progress import message_stream, training_progress
from nbn_tutorial.train.run_dir import (STAGING_DIR, check_location, check_run_dir, clear_run_dir, discard_staged_run,
                                        existing_run_files, has_checkpoint, promote_staged_run, protocol_differences,
                                        remove_abandoned_staging, remove_unstarted_run, resolve_dataset_defaults,
                                        stage_replacement, stored_config)
from nbn_tutorial.train.runtime import (DistInfo, Runtime, cpu_threads, dist_info_from_env, process_group,
                                        resolve_device, resolve_runtime, seed_everything)
from nbn_tutorial.train.schedule import learning_rate
from nbn_tutorial.train.selection import (TEST_SPLIT_NOTE, describe_selection, selection_key, selection_split,
                                          val_columns)
from nbn_tutorial.train.stage2 import prepare_stage2
from nbn_tutorial.train.validation import validate_config
from nbn_tutorial.wording import plural
from nbn_tutorial import diagnosis
from nbn_tutorial import data
from nbn_tutorial import nn as nbn_nn

NO_BAD_BATCH = 2**62


def _shard_size(count: int, world_size: int, rank: int) -> int:
    """Real (not padding) samples in ``rank``'s shard of an unshuffled DistributedSampler over ``count`` items."""
    return len(range(rank, count, world_size))


def _check_last_batch(config: Config, last_batch: int) -> None:
    """The LR head normalises logits over the batch, which is impossible for a last batch of one sample."""
    if config.head == "lr" and last_batch == 1:
        raise UserError(f"with head=lr the last training batch would hold a single sample, which batch "
                        f"normalisation of the logits cannot train on; change batch_size (now {config.batch_size})")


class Trainer:
    """One training run: built from a config, driven epoch by epoch, checkpointed to the run directory."""

    def __init__(self, config: Config, run_dir: Path, info: DistInfo, runtime: Runtime, progress: bool) -> None:
        self.config, self.run_dir, self.info, self.runtime = config, run_dir, info, runtime
        self.show_progress = progress and info.is_main
        self.bar = training_progress(False, "", 0)  # run() replaces it with the mode's progress output
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.start_epoch = 0
        self.beta_reference: dict[str, Tensor] | None = None  # β directions after the first epoch (NBN runs)
        self.replaces: Path | None = None   # --overwrite: the run this one replaces at its first checkpoint
        self.skipped: set[str] = set()      # unreadable images left out so far (skip_bad_images)
        torch.backends.cudnn.benchmark = runtime.cudnn_benchmark
        seed_everything(config.seed)
        self.selection = selection_split(config)
        datasets = build_datasets(config, ("train", "test", "val") if self.selection == "val" else ("train", "test"))
        self.train_set, self.test_set, self.val_set = datasets["train"], datasets["test"], datasets.get("val")
        self.num_classes = self.train_set.num_classes
        self.data = data_identity(self.train_set)   # recorded in every checkpoint, checked by evaluate and stage 2
        self.model = self._build_model()
        self.loss_fn = build_loss_for(config, self.train_set).to(runtime.device)
        self.objective = build_objective(config, self.model, self.loss_fn, self.train_set)  # what a step computes
        self.optimizer = build_optimizer(self.model, config, runtime)
        self.scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.amp_dtype == torch.float16)
        self.module = self._wrap(self.objective.network)
        self._build_loaders()

    def _build_model(self) -> nn.Module:
        """The config's model on the device, in the configured memory format, SyncBN-converted under DDP."""
        model = build_model_for(self.config, self.train_set).to(self.runtime.device)
        if self.runtime.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.info.enabled and self.config.sync_bn:  # before the optimizer sees the parameters
            model = nbn_nn.convert_sync_batchnorm(model)
        prepare_stage2(model, self.config, self.data)  # init_from, reinit_classifier, freezing what trainable leaves
        return model

    def _build_loaders(self) -> None:
        """This process's train and test loaders (its shard of each split under DDP)."""
        config, info = self.config, self.info
        per_process = config.batch_size // info.world_size
        loader_options = dict(batch_size=per_process, device=self.runtime.device, seed=config.seed,
                              num_workers=config.num_workers, num_replicas=info.world_size, rank=info.rank,
                              channels_last=self.runtime.channels_last)
        self.train_loader = data.make_loader(self.train_set, train=True, sampler=config.sampler, **loader_options)
        self.test_loader = data.make_loader(self.test_set, train=False, **loader_options)
        self.test_samples = _shard_size(len(self.test_set), info.world_size, info.rank)
        if self.val_set is not None:
            self.val_loader = data.make_loader(self.val_set, train=False, **loader_options)
            self.val_samples = _shard_size(len(self.val_set), info.world_size, info.rank)
        _check_last_batch(config, len(self.train_loader.sampler) % per_process)   # the sampler's epoch, this shard

    def _wrap(self, model: nn.Module) -> nn.Module:
        """DDP and torch.compile around the model, as configured."""
        module = model
        if self.info.enabled:
            device_ids = [self.runtime.device.index] if self.runtime.device.type == "cuda" else None
            module = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
        if self.runtime.compile_mode is not None:
            mode = None if self.runtime.compile_mode == "default" else self.runtime.compile_mode
            # Static shapes: the last partial batch adds one graph once, not a recompile every epoch.
            module = torch.compile(module, mode=mode, backend=self.runtime.compile_backend, dynamic=False)
        return module

    # -- state -------------------------------------------------------------------------------------

    def state(self, epochs_done: int) -> dict:
        """Everything needed to continue after ``epochs_done`` epochs, as weights_only-safe values."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": config_to_dict(self.config),
            "data": self.data,
            "epoch": epochs_done,
            "world_size": self.info.world_size,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"epoch": epochs_done, "lr": learning_rate(self.config, max(epochs_done - 1, 0))},
            "scaler": self.scaler.state_dict(),
            "loss": {"name": self.config.loss, "epoch": epochs_done},
            "loader": {"epoch": epochs_done, "seed": self.config.seed},
            "best": {"metric": self.config.checkpoint_metric, "split": self.selection, "value": self.best_value,
                     "epoch": self.best_epoch},
            "nbn_reference": dict(self.beta_reference or {}),
            "rng": rng_states(self.runtime.device),
        }

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint (of the same training set): weights, optimizer, scaler, best so far and
        random states."""
        check_training_set(state, self.data, f"the run in {self.run_dir}", RESUME_REMEDY)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.best_value, self.best_epoch = state["best"]["value"], state["best"]["epoch"]
        self.beta_reference = state.get("nbn_reference") or None  # absent in checkpoints of older versions
        self.start_epoch = state["epoch"]
        set_rng_states(state["rng"], self.runtime.device)

    # -- one epoch ---------------------------------------------------------------------------------

    def _step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self.runtime.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        with self.runtime.autocast():
            loss, logits = self.objective(self.module, x, y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler.is_enabled():
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return loss.detach(), logits.detach()

    def _start_epoch(self, epoch: int) -> float:
        """Set the epoch's learning rate, loss epoch (DRW) and shuffling; returns the learning rate."""
        lr = learning_rate(self.config, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.loss_fn.set_epoch(epoch)
        self.train_loader.set_epoch(epoch)
        self.module.train()
        return lr

    def train_epoch(self, epoch: int) -> dict:
        """Train one epoch; returns lr, mean train loss and accuracy (over all processes)."""
        lr = self._start_epoch(epoch)
        device = self.runtime.device
        sums = torch.zeros(2, dtype=torch.float64, device=device)        # sum of loss * n, correct
        first_bad = torch.full((1,), NO_BAD_BATCH, dtype=torch.int64, device=device)
        seen = 0
        batches = len(self.train_loader)
        refresh_every = max(1, batches // 20)  # .item() syncs the GPU: refresh the bar ~20 times an epoch
        with self.bar.batches(epoch, batches) as bar:
            for index, (x, y) in enumerate(self.train_loader):
                loss, logits = self._step(x, y)
                with torch.no_grad():
                    sums += torch.stack([loss.double() * len(y), (logits.argmax(1) == y).sum().double()])
                    # Remember the first non-finite batch without a GPU sync; checked once, after the epoch.
                    first_bad = torch.where(loss_ok(loss, self.config.max_loss) | (first_bad < NO_BAD_BATCH),
                                            first_bad, index)
                seen += len(y)
                bar.update(1)
                if self.show_progress and ((index + 1) % refresh_every == 0 or index + 1 == batches):
                    loss_sum, correct = sums.tolist()
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", lr=f"{lr:.4g}", acc=f"{correct / seen:.3f}",
                                    refresh=False)
        totals = torch.cat([sums, torch.tensor([seen], dtype=torch.float64, device=device)])
        if self.info.enabled:
            dist.all_reduce(totals)
            dist.all_reduce(first_bad, op=dist.ReduceOp.MIN)
        bad = int(first_bad.item())
        if bad != NO_BAD_BATCH:
            self._stop_on_bad_loss(epoch, bad, batches, float(totals[0]))
        loss_sum, correct, seen = totals.tolist()
        return {"lr": lr, "train_loss": loss_sum / seen, "train_acc": correct / seen}

    def _stop_on_bad_loss(self, epoch: int, batch: int, batches: int, loss_sum: float) -> None:
        raise bad_loss_error(self.config, epoch, batch, batches, loss_sum, kept_text(self.run_dir, self.replaces))

    def evaluate(self, split: str = "test") -> dict:
        """Metrics on the test (or val) split; under DDP each process evaluates its shard and the counts are summed."""
        if self.info.enabled:  # evaluate with rank 0's BN statistics, which are what the checkpoint stores
            for buffer in self.model.buffers():
                dist.broadcast(buffer, 0)
        loader, samples, dataset = ((self.val_loader, self.val_samples, self.val_set) if split == "val"
                                    else (self.test_loader, self.test_samples, self.test_set))
        correct, total = evaluate_model(self.module, loader, self.loss_fn, self.num_classes, self.runtime, samples)
        if self.info.enabled:
            dist.all_reduce(correct)
            dist.all_reduce(total)
        return count_metrics(self.model, correct, total, dataset.shot_groups)

    def _record_nbn_state(self, epochs_done: int) -> None:
        """Append the NBN layers' α and γ/β norms after this epoch to nbn_dynamics.jsonl (NBN runs only)."""
        if self.beta_reference is None and epochs_done == 1:
            self.beta_reference = diagnosis.beta_directions(self.model)
        rows = diagnosis.nbn_state_rows(self.model, epochs_done, self.beta_reference)
        if rows and self.info.is_main:
            append_text(self.run_dir / diagnosis.DYNAMICS_FILE, jsonl_text(rows))

    # -- the loop ----------------------------------------------------------------------------------

    def _is_better(self, value: float | None) -> bool:
        return value is not None and (self.best_value is None or value > self.best_value)

    def _save(self, epochs_done: int, last: bool, best: bool) -> None:
        if not (last or best):
            return
        state = self.state(epochs_done)
        if last:
            write_checkpoint(state, [self.run_dir / "last.pt"])
        if best:
            write_checkpoint({**state, "role": "best"}, [self.run_dir / "best.pt"])
        if self.replaces is not None:  # the first checkpoint of a replacing run: now replace the previous run
            self.run_dir, self.replaces = promote_staged_run(self.run_dir, self.replaces), None

    def run_epoch(self, epoch: int, end: int) -> dict:
        """Train 0-based ``epoch``, evaluate if due, write its metrics row and checkpoints; returns the row."""
        config = self.config
        started = time.perf_counter()
        done = epoch + 1
        row: dict[str, Any] = {"epoch": done, **self.train_epoch(epoch)}
        check_finite_model(self.model, config, done, kept_text(self.run_dir, self.replaces))
        self._record_nbn_state(done)
        evaluated = done % config.eval_every == 0 or done == config.epochs
        improved = False
        if evaluated:
            row.update(self.evaluate())
            if self.selection == "val":
                row.update(val_columns(self.evaluate("val")))
            if self.selection is not None:
                value = row[selection_key(config.checkpoint_metric, self.selection)]
                improved = self._is_better(value)
                if improved:
                    self.best_value, self.best_epoch = value, done
        row["time_s"] = time.perf_counter() - started
        if self.info.is_main:
            if evaluated:
                append_metric_row(self.run_dir, {key: row.get(key) for key in METRIC_COLUMNS})
            self._save(done, last=done % config.save_every == 0 or done == end, best=improved)
            self.skipped = record_skipped([self.train_loader, self.test_loader, getattr(self, "val_loader", None)],
                                          self.run_dir, self.skipped)
        return row

    def run(self) -> None:
        """Train from ``start_epoch`` to the end (or to ``stop_after_epochs``), evaluating and checkpointing."""
        config = self.config
        end = min(config.epochs, config.stop_after_epochs or config.epochs)
        target = self.replaces or self.run_dir
        header = (f"training {config.dataset} {config.model} {config.norm} {config.loss} -> {target} "
                  f"({self.runtime.describe()}, {self.info.world_size} process(es); "
                  f"{describe_selection(self.selection, config.checkpoint_metric)})")
        with training_progress(self.show_progress, header, total=config.epochs, initial=self.start_epoch) as self.bar:
            for epoch in range(self.start_epoch, end):
                row = self.run_epoch(epoch, end)
                self.bar.update(1)
                if "test_acc" in row:
                    self.bar.set_postfix(acc=f"{row['test_acc']:.3f}", bal=f"{row['balanced_acc']:.3f}", refresh=False)
        rows = read_metric_rows(self.run_dir) if self.info.is_main else []  # the final line, with or without bars
        if rows:
            print(f"last: {format_metrics(rows[-1])}", file=message_stream())
        if self.show_progress and self.selection == "test" and self.best_epoch is not None:
            print(f"best.pt (epoch {self.best_epoch}): {TEST_SPLIT_NOTE}", file=message_stream())


def _prepare_run_dir(run_dir: Path, config: Config, resume_state: dict | None) -> None:
    """Rank 0: create the run directory, clear a replaced run or trim metrics to the resumed epoch, save config."""
    ensure_dir(run_dir)
    if resume_state is None:
        clear_run_dir(run_dir)
    else:
        truncate_metrics(run_dir, resume_state["epoch"])
        diagnosis.truncate_dynamics(run_dir, resume_state["epoch"])
    save_config(resolve_dataset_defaults(config), run_dir / "config.yaml")


def train(config: Config, out_dir: str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True) -> Path:
    """Train ``config`` into the run directory ``out_dir`` and return it (see :mod:`nbn_tutorial.train`).

    ``resume=True`` continues from ``out_dir/last.pt`` (same config; run-control fields such as
    ``stop_after_epochs``, ``device`` or ``data_root`` may differ, and a larger ``epochs`` extends the
    run); ``overwrite=True`` replaces an existing run and says so, keeping it until the new run has
    written its first checkpoint. A directory without any checkpoint is trained again from epoch 1.
    The stored config records absolute data paths. Under torchrun the processes form a DDP group for
    the duration of this call. The run directory is locked for the whole call (:mod:`.lock`): a second
    writer is refused, and an attempt that stops before its first checkpoint leaves nothing behind.
    """
    validate_config(config)
    config = resolve_run_paths(config)   # the run config records absolute data paths
    run_dir = Path(out_dir)
    check_utf8_path(run_dir, "run directory")
    info = dist_info_from_env()
    if config.batch_size % info.world_size:
        raise UserError(f"batch_size {config.batch_size} must be divisible by the number of processes "
                        f"({info.world_size}); each process trains on batch_size / processes")
    device = resolve_device(config.device, info.local_rank)
    runtime = resolve_runtime(config, device)
    if config.sync_bn and info.enabled and device.type != "cuda":
        raise UserError("sync_bn needs CUDA devices (torch's SyncBatchNorm does not run on CPU); set sync_bn=false")
    if resume and overwrite:
        raise UserError("choose either --resume (continue the run) or --overwrite (replace it), not both")
    check_location(run_dir)
    with folder_lock(run_dir) if info.is_main else contextlib.nullcontext():   # only rank 0 writes
        if info.is_main:
            remove_abandoned_staging(run_dir)
        _train_locked(config, run_dir, info, runtime, resume=resume, overwrite=overwrite, progress=progress)
    return run_dir


def _train_locked(config: Config, run_dir: Path, info: DistInfo, runtime: Runtime, *, resume: bool, overwrite: bool,
                  progress: bool) -> None:
    """:func:`train` once the run directory is locked: check it, then train, resume or replace the run."""
    resume_state = check_run_dir(run_dir, config, resume, overwrite)
    if resume_state is not None and resume_state["epoch"] >= min(config.epochs, config.stop_after_epochs or 10**9):
        if info.is_main:
            done = resume_state["epoch"]
            how = (f"it is finished; to train longer, resume with epochs above {done}" if done >= config.epochs else
                   f"stop_after_epochs={config.stop_after_epochs} is reached; raise it to train on")
            print(f"{run_dir} has already trained {plural(done, 'epoch')}, so there is nothing to resume ({how})",
                  file=message_stream())
        return
    if info.is_main:
        print_notes(config_notes(config))
    # --overwrite of a run with checkpoints: write into a staging folder until the first checkpoint exists
    replaces = run_dir if overwrite and has_checkpoint(run_dir) else None
    prepared = False   # whether this attempt wrote run files (removed again if it stops before a checkpoint)
    try:
        with process_group(info, runtime.device), cpu_threads(config.cpu_threads):
            trainer = Trainer(config, run_dir / STAGING_DIR if replaces else run_dir, info, runtime, progress)
            trainer.replaces = replaces
            if resume_state is not None:
                trainer.restore(resume_state)
            if info.is_main:
                prepared = replaces is None and resume_state is None
                _prepare_run_dir(stage_replacement(run_dir) if replaces else run_dir, config, resume_state)
            if info.enabled:
                dist.barrier()
            try:
                trainer.run()
            finally:
                if trainer.replaces is not None and info.is_main:  # stopped before its first checkpoint
                    discard_staged_run(trainer.run_dir)
    except BaseException:
        if prepared:
            remove_unstarted_run(run_dir)
        raise


def load_or_train(config: Config, run_dir: str | os.PathLike, *, progress: bool = True) -> Path:
    """The notebooks' pattern: reuse a finished run of ``config`` in ``run_dir``, resume an unfinished one,
    or train it; a run of a different config there is a UserError (never silently replaced)."""
    run_dir = Path(run_dir)
    stored = stored_config(run_dir)
    if stored is not None:
        differences = protocol_differences(stored, config)
        if differences:
            raise UserError(f"{str(run_dir)!r} holds a run of another config ({'; '.join(differences)}); "
                            "choose another run directory or delete that one")
    if (run_dir / "last.pt").exists():
        return train(config, run_dir, resume=True, progress=progress)
    # Files without last.pt: this config's run, stopped before its first checkpoint; start it again.
    return train(config, run_dir, overwrite=bool(existing_run_files(run_dir)), progress=progress)
