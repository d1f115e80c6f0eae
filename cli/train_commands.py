"""`bbzip train` and `bbzip train-encoder`."""
from __future__ import annotations

import shlex
from pathlib import Path

import click
import numpy as np
import torch

from bbzip.models.architectures import likelihood_input
from bbzip.models.pixels import binary_scale
from bbzip.models.data import load_any
from bbzip.models.patches import folder_images, random_patches, stack_images
from bbzip.models.conv_vae_config import ConvVAEConfig
from bbzip.models.tiled_ar_config import TiledARConfig
from bbzip.models.train import ENCODER_OBJECTIVES, SCHEDULES, train_encoder, train_vae
from bbzip.models import parallel, registry
from bbzip.models.vae_config import LIKELIHOODS
from bbzip.models.weights import load_trained, save_model

from .console import Output
from .errors import BBZipError, guard, refuse_overwrite


# Architectures trained on random square patches, and the config settings the patch side is: a
# tiled model codes in tiles of that side, a convolutional VAE codes images of that size.
PATCH_SIDE = {TiledARConfig: ("tile",), ConvVAEConfig: ("height", "width")}


def _model_input(likelihood: str, images, data: str):
    try:
        return likelihood_input(likelihood, images, data)
    except ValueError as error:
        raise BBZipError(str(error)) from None


def _command_line() -> str:
    """The command as parsed, every setting spelled out (defaults too), to record in weights."""
    ctx = click.get_current_context()
    parts = ["bbzip", ctx.info_name]  # not command_path: under a test runner the root is not "bbzip"
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name in ("force", "resume", "checkpoint", "checkpoint_every") or value is None:
            continue
        if isinstance(param, click.Argument):
            parts.append(shlex.quote(str(value)))
        elif param.multiple:
            for each in value:
                parts += [param.opts[-1], shlex.quote(str(each))]
        elif param.is_flag:
            parts += [param.opts[-1]] if value else []
        else:
            parts += [param.opts[-1], shlex.quote(str(value))]
    return " ".join(parts)


def _split(images: np.ndarray, holdout: int | None) -> tuple[np.ndarray, np.ndarray]:
    if holdout is None:  # default: a tenth of the images, at most 1000
        holdout = min(1000, len(images) // 10)
    if holdout <= 0:
        return images, images[:0]
    if holdout >= len(images):
        raise click.UsageError(f"--holdout {holdout} leaves no training images")
    return images[:-holdout], images[-holdout:]


def _device(name: str) -> str:
    """--device: auto is cuda when torch sees a GPU, else cpu."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BBZipError(f"--device {name}: torch sees no CUDA device here")
    return name


def _process_group(out, shards: int, device: str):
    """(output, shards, device) of this process: one shard per process under torchrun
    (models/parallel.py), and only the leading process says anything."""
    device = _device(device)
    try:
        group = parallel.from_environment(shards, device)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    if not group.leader:
        return Output(quiet=True), group, device
    if group.distributed:
        out.info(f"data-parallel: {group.count} processes, one shard of each batch each")
    return out, group, device


def _fit_and_save(out, model, fit_fn, train: np.ndarray, held_out: np.ndarray, output: Path, info: dict, *, epochs: int,
                  batch_size: int, seed: int, device: str, group, **kwargs) -> None:
    """Run a training loop with a progress bar, or a line per epoch when stderr is not a
    terminal, and each epoch's held-out bpd; the leading process writes OUTPUT."""
    steps = epochs * -(-len(train) // batch_size)
    try:
        with out.bar("training", steps, "steps") as advance:

            def progress(p):
                advance(1, status=f"epoch {p.epoch}/{p.epochs}  bpd {p.bpd:.4f}")
                if p.step == p.steps and not out.progress:
                    out.info(f"epoch {p.epoch}/{p.epochs}: training bpd {p.bpd:.4f}")

            def held_out_bpd(epoch):
                if len(held_out):
                    out.info(f"epoch {epoch}/{epochs}: held-out bpd (-ELBO) {_held_out_bpd(model, held_out, seed):.4f}")

            history = fit_fn(progress=progress, epochs=epochs, batch_size=batch_size, seed=seed, shards=group,
                             device=device, after_epoch=held_out_bpd, **kwargs)
        if group.leader:
            sha = save_model(model, output, {**info, "train_bpd": history, "shards": group.count})
            out.info(f"wrote {output} (sha256 {sha[:16]}...), final training bpd {history[-1]:.4f}")
    finally:
        parallel.finish(group)


def _held_out_bpd(model, held_out: np.ndarray, seed: int) -> float:
    from bbzip.models.evaluate import elbo_bpd

    return elbo_bpd(model, held_out, samples=1, seed=seed)


def _where_to_train(command):
    """--device and --shards, the same for train and train-encoder."""
    command = click.option("--shards", default=1, show_default=True, type=click.IntRange(1, 1024),
                           help="Cut each batch into N shards, each with its own noise: what N processes of a "
                                "data-parallel run (torchrun --nproc-per-node N) compute, one shard each; one process "
                                "with --shards N computes the same weights (and resumes their checkpoints).")(command)
    return click.option("--device", default="auto", show_default=True,
                        help="Where to train: cpu, cuda, cuda:N; auto is cuda when torch sees a GPU, else cpu.")(command)


@click.command("train")
@click.argument("data")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Weights file to write (.safetensors).")
@click.option("--likelihood", type=click.Choice(["auto", *LIKELIHOODS]), default="auto", show_default=True,
              help="bernoulli for binary images, logistic for 8-bit grey; auto picks from the data.")
@click.option("--architecture", type=click.Choice(registry.trainable()), default="mlp-vae", show_default=True,
              help="The paper's MLP VAE, or a VAE whose likelihood is a local autoregressive model (models/local_ar.py).")
@click.option("--latent", default=10, show_default=True, help="Latent dimensions.")
@click.option("--hidden", default=500, show_default=True, help="Width of the two hidden layers.")
@click.option("--epochs", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--lr", default=3e-4, show_default=True, type=click.FloatRange(0, 1, min_open=True))
@click.option("--batch-size", default=100, show_default=True, type=click.IntRange(1, 1 << 16))
@click.option("--seed", default=0, show_default=True)
@click.option("--holdout", type=int, help="Images kept out of training (the last N) to report a held-out bpd "
              "[default: a tenth, at most 1000; 0 trains on all].")
@click.option("--patch", type=click.IntRange(4, 256),
              help="Train on random PATCH x PATCH patches of DATA's images (flipped at random): for tiled-ar-vae the "
                   "tile size it codes in, for conv-vae the size of the images it codes.")
@click.option("--patches", default=32768, show_default=True, type=click.IntRange(1, 1 << 22),
              help="How many patches to draw (with --patch).")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="A setting of the architecture's config, e.g. --set head=48 --set channels=1 (tiled-ar-vae), "
                   "--set filters=64 (conv-vae).")
@click.option("--lr-schedule", type=click.Choice(SCHEDULES), default="constant", show_default=True,
              help="cosine: the learning rate falls from --lr to 0 over the whole run.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), help="Checkpoint file (default: OUTPUT.ckpt).")
@click.option("--checkpoint-every", default=10, show_default=True, help="Epochs between checkpoints.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint.")
@click.option("--threads", default=0, help="torch threads (0: torch's default).")
@_where_to_train
@click.option("-f", "--force", is_flag=True, help="Overwrite OUTPUT.")
@click.pass_obj
@guard
def train_command(out, data, output, likelihood, architecture, latent, hidden, epochs, lr, batch_size, seed, holdout,
                  patch, patches, settings, lr_schedule, checkpoint, checkpoint_every, resume, threads, device, shards,
                  force):
    """Fit a VAE by the ELBO on DATA: binary-mnist, mnist, a folder, .npy/.npz or IDX file of
    single-channel images; with --architecture tiled-ar-vae or conv-vae and --patch, a folder of
    grey or RGB images of any size (or an .npy/.npz stack) gives random patches; conv-vae also
    trains on a stack of RGB images of one size (CIFAR batches are read)."""
    refuse_overwrite(output, force)
    if threads:
        torch.set_num_threads(threads)
    out, group, device = _process_group(out, shards, device)
    chosen = registry.get(architecture)
    if chosen.config_class in PATCH_SIDE and patch is not None:
        config = _config_with(chosen.config_class, dict.fromkeys(PATCH_SIDE[chosen.config_class], patch), settings)
        images = _patches(data, config.channels, patch, patches, seed)
        description = f"{config.channels}-channel {architecture} ({patches} patches of {patch}x{patch})"
    elif chosen.config_class is ConvVAEConfig:  # a stack of images of one size, as CIFAR's
        images = load_any(data, "train")
        if images.dtype != np.uint8 or images.ndim not in (3, 4) or images.ndim == 4 and images.shape[3] != 3:
            raise BBZipError(f"{data}: {architecture} trains on 8-bit grey or RGB images (N, H, W[, 3]); "
                             "for a folder of images of any size give --patch")
        channels = 1 if images.ndim == 3 else 3
        config = _config_with(ConvVAEConfig, {"height": images.shape[1], "width": images.shape[2], "channels": channels},
                              settings)
        description = f"{channels}-channel {architecture} ({images.shape[1]}x{images.shape[2]})"
    elif chosen.config_class in PATCH_SIDE:
        raise click.UsageError(f"--architecture {architecture} trains on patches: give --patch (e.g. 64)")
    else:
        if patch is not None or settings:
            raise click.UsageError(f"--patch and --set are settings of tiled-ar-vae and conv-vae, not of {architecture}")
        images, config, description = _whole_images(load_any(data, "train"), data, chosen, likelihood, latent, hidden)
    train, held_out = _split(images, holdout)
    torch.manual_seed(seed)
    model = chosen.trained_class()(config)
    out.info(f"training a {description} on {len(train)} images of {data}")
    _fit_and_save(out, model, lambda **kw: train_vae(model, train, **kw), train, held_out, output,
                  {"command": _command_line(), "data": data, "epochs": epochs}, epochs=epochs, batch_size=batch_size,
                  seed=seed, device=device, group=group, lr=lr, checkpoint=checkpoint or output.with_suffix(".ckpt"),
                  checkpoint_every=checkpoint_every, resume=resume, schedule=lr_schedule)


def _whole_images(images, data: str, chosen, likelihood: str, latent: int, hidden: int):
    """(images, config, description) of a model of fixed size: the images' own."""
    if images.ndim != 3:
        raise click.UsageError(f"{chosen.name} trains on single-channel images (N, H, W)")
    if likelihood == "auto":
        likelihood = "bernoulli" if binary_scale(images) else "logistic"
    images = _model_input(likelihood, images, data)
    config = chosen.config_class(likelihood, latent, hidden, images.shape[1], images.shape[2])
    return images, config, f"{likelihood} {chosen.name} (latent {latent})"


def _config_with(config_class, base: dict, settings) -> object:
    """config_class(**base, **settings given as NAME=VALUE integers); a usage error names a bad one."""
    values = dict(base)
    for setting in settings:
        name, _, value = setting.partition("=")
        if not name or not value.lstrip("-").isdigit():
            raise click.UsageError(f"--set {setting}: expected NAME=INTEGER")
        values[name] = int(value)
    try:
        return config_class(**values)
    except TypeError:
        raise click.UsageError(f"--set: {config_class.__name__} has the settings "
                               f"{', '.join(config_class.__dataclass_fields__)}") from None
    except ValueError as error:
        raise click.UsageError(f"--set: {error}") from None


def _patches(data: str, channels: int, size: int, count: int, seed: int) -> np.ndarray:
    """Random patches (count, size, size[, 3]) of a folder's images, or of a stack's."""
    path = Path(data)
    try:
        if path.is_dir():
            images = folder_images(path, channels)
        else:
            images = stack_images(load_any(data, "train"), channels)
        drawn = random_patches(images, size, count, seed)
    except ValueError as error:
        raise BBZipError(f"{data}: {error}") from None
    return drawn[..., 0] if channels == 1 else drawn


@click.command("train-encoder")
@click.argument("model_spec", metavar="MODEL")
@click.argument("data")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--objective", type=click.Choice(ENCODER_OBJECTIVES), default="reverse-half-asleep", show_default=True)
@click.option("--alpha", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Share of model samples in each batch (eq. 21): 0 = ordinary, 1 = reverse sleep.")
@click.option("--samples-from", type=click.Choice(["prior", "aggregate"]), default="prior", show_default=True,
              help="z ~ p(z), or z ~ q(z|x') for data x' (for models whose aggregate posterior is far from the prior).")
@click.option("--sigma", default=0.1, show_default=True, type=click.FloatRange(0, 100), help="Noise level of the denoising objective.")
@click.option("--epochs", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--lr", default=3e-4, show_default=True, type=click.FloatRange(0, 1, min_open=True))
@click.option("--batch-size", default=100, show_default=True, type=click.IntRange(1, 1 << 16))
@click.option("--seed", default=0, show_default=True)
@click.option("--holdout", type=int, help="Images kept out (the last N) [default: a tenth, at most 1000].")
@click.option("--patch", type=click.IntRange(4, 256),
              help="Train on random PATCH x PATCH patches of DATA's images, as `bbzip train --patch` (the same seed "
                   "draws the same patches); PATCH must be the model's tile or image size.")
@click.option("--patches", default=32768, show_default=True, type=click.IntRange(1, 1 << 22),
              help="How many patches to draw (with --patch).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--checkpoint-every", default=10, show_default=True)
@click.option("--resume", is_flag=True)
@click.option("--threads", default=0)
@_where_to_train
@click.option("-f", "--force", is_flag=True)
@click.pass_obj
@guard
def train_encoder_command(out, model_spec, data, output, objective, alpha, samples_from, sigma, epochs, lr, batch_size,
                          seed, holdout, patch, patches, checkpoint, checkpoint_every, resume, threads, device, shards,
                          force):
    """Fine-tune only the encoder of MODEL (a .safetensors file or a shipped model's name;
    decoder frozen), e.g. reverse half-asleep."""
    refuse_overwrite(output, force)
    if threads:
        torch.set_num_threads(threads)
    out, group, device = _process_group(out, shards, device)
    model, metadata = load_trained(model_spec)
    if patch is not None:
        config = model.config
        sides = [getattr(config, name) for name in PATCH_SIDE.get(type(config), ())]
        if not sides or any(side != patch for side in sides):
            raise click.UsageError(f"--patch {patch}: the model codes {config.codes.describe()} images")
        images = _patches(data, config.channels, patch, patches, seed)
    else:
        images = _model_input(model.config.likelihood, load_any(data, "train"), data)
    train, held_out = _split(images, holdout)
    out.info(f"training the encoder ({objective}, alpha {alpha}) on {len(train)} images of {data}")
    info = {"command": _command_line(), "data": data, "epochs": epochs, "objective": objective, "alpha": alpha,
            "base_model": metadata.get("command", str(model_spec))}
    _fit_and_save(out, model, lambda **kw: train_encoder(model, train, objective, alpha=alpha, sigma=sigma,
                                                          samples_from=samples_from, **kw),
                  train, held_out, output, info, epochs=epochs, batch_size=batch_size, seed=seed, device=device,
                  group=group, lr=lr, checkpoint=checkpoint or output.with_suffix(".ckpt"),
                  checkpoint_every=checkpoint_every, resume=resume)
