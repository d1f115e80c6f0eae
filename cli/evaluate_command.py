"""`bbzip evaluate`: a model's bits per dimension on a data set, as the paper measures them."""
from __future__ import annotations

import json

import click
import torch

from bbzip.models.data import load_any
from bbzip.models.architectures import likelihood_input
from bbzip.models.evaluate import elbo_bpd, iwae_bpd, optimal_inference_bpd
from bbzip.models.weights import load_trained

from .errors import BBZipError, guard


@click.command("evaluate")
@click.argument("model_spec", metavar="MODEL")
@click.argument("data", default="")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True,
              help="Which split of a named data set.")
@click.option("--samples", default=10, show_default=True, help="Posterior samples averaged in the -ELBO.")
@click.option("--iwae", "iwae_k", default=0, show_default=True, help="Also the importance-weighted bound with K samples (0: skip).")
@click.option("--oracle-epochs", default=0, show_default=True,
              help="Also fit an encoder on the images themselves for N epochs (paper eq. 13): the amortisation gap.")
@click.option("--limit", type=int, help="Only the first N images.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=0, help="torch threads (0: torch's default).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON on stdout.")
@click.pass_obj
@guard
def evaluate_command(out, model_spec, data, split, samples, iwae_k, oracle_epochs, limit, seed, threads, as_json):
    """Bits per dimension of MODEL (a shipped name or a .safetensors file) on DATA.

    DATA is binary-mnist, mnist, a folder, .npy/.npz or IDX file; by default the named set the
    shipped model was trained on. Reports -ELBO (the size a bits-back archive aims at), and on
    request the IWAE bound (closer to -log p(x)) and the optimal-inference oracle.
    """
    if samples < 1 or iwae_k < 0 or oracle_epochs < 0:
        raise click.UsageError("--samples must be >= 1, --iwae and --oracle-epochs >= 0")
    if threads:
        torch.set_num_threads(threads)
    model, _ = load_trained(model_spec)
    name = model_spec
    codes = model.config.codes
    if not data:
        if codes.channels != 1 or codes.any_size or (codes.height, codes.width) != (28, 28):
            raise click.UsageError(f"give DATA: {name} codes {codes.describe()} images")
        data = "binary-mnist" if codes.two_valued else "mnist"
    images = load_any(data, split)[:limit]
    if codes.any_size or not codes.fits_shape(images):
        raise BBZipError(f"{data}: images of shape {images.shape[1:]} do not fit {name} ({codes.describe()})")
    try:
        images = likelihood_input(model.config.likelihood, images, data)
    except ValueError as error:
        raise BBZipError(f"{error} ({name} is a Bernoulli model)") from None
    figures = {"model": name, "data": data, "split": split, "images": len(images),
               "elbo_bpd": elbo_bpd(model, images, samples=samples, seed=seed)}
    out.info(f"{name} on {len(images)} images of {data}: -ELBO {figures['elbo_bpd']:.4f} bpd")
    if iwae_k:
        figures["iwae_bpd"] = iwae_bpd(model, images, k=iwae_k, seed=seed)
        out.info(f"IWAE (k={iwae_k}): {figures['iwae_bpd']:.4f} bpd")
    if oracle_epochs:
        figures["oracle_bpd"] = optimal_inference_bpd(model, images, epochs=oracle_epochs, seed=seed, samples=samples)
        figures["amortisation_gap_bpd"] = figures["elbo_bpd"] - figures["oracle_bpd"]
        out.info(f"optimal-inference oracle ({oracle_epochs} epochs): {figures['oracle_bpd']:.4f} bpd, "
                 f"amortisation gap {figures['amortisation_gap_bpd']:.4f} bpd")
    if as_json:
        click.echo(json.dumps(figures, indent=2))
