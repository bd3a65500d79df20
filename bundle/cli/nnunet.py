"""nnU-Net v2 on the bundle's data and folds (:mod:`bundle.evaluation.nnunet`).

    jasgan-nnunet export --dataset /data/AtriaSeg2018 --layout miccai2018 --plan plans/atria.json \
        --out nnunet --dataset_id 501 --name AtriaSeg2018
    export nnUNet_raw=nnunet/nnUNet_raw nnUNet_preprocessed=nnunet/nnUNet_preprocessed nnUNet_results=nnunet/results
    nnUNetv2_plan_and_preprocess -d 501 && nnUNetv2_train 501 3d_fullres 0   # ... folds 0-4: the plan's folds
    nnUNetv2_predict -i nnunet/nnUNet_raw/Dataset501_AtriaSeg2018/imagesTs -o nnunet/test -d 501 -c 3d_fullres
    jasgan-nnunet import --predictions nnunet/test --dataset /data/AtriaSeg2018 --layout miccai2018 \
        --plan plans/atria.json --out eval/nnunet
    jasgan-compare --methods '{"JAS-GAN": "eval/atria/predictions", "nnU-Net": "eval/nnunet"}' ...
"""

from __future__ import annotations

from bundle.cli import run, setup_logging
from bundle.data.layouts import read_dataset
from bundle.evaluation import nnunet
from bundle.planning.planner import load_plan
from bundle.planning.split import split_records


def export(dataset: str, plan: str, out: str = "nnunet", dataset_id: int = 501, name: str = "JasGan",
           layout: str = "datalist", csv: str | None = None, log_level: str = "INFO") -> None:
    """Write the dataset and its plan's folds as nnU-Net v2's ``Dataset<id>_<name>`` under ``out``."""
    setup_logging(log_level)
    raw = nnunet.export_dataset(read_dataset(dataset, layout, csv), load_plan(plan), out, dataset_id, name,
                                inputs=[dataset])
    print(f"wrote {raw} and {raw.parent.parent / 'nnUNet_preprocessed' / raw.name / 'splits_final.json'}")


def import_(predictions: str, dataset: str, plan: str, out: str, layout: str = "datalist", split: str = "test",
            csv: str | None = None, log_level: str = "INFO") -> None:
    """Read nnU-Net's predicted label maps of a split of the plan into a bundle prediction folder ``out``."""
    setup_logging(log_level)
    records = split_records(load_plan(plan), split, dataset, layout, csv)
    rows = nnunet.import_predictions(predictions, records, out, inputs=[dataset])
    failed = [r["scan"] for r in rows if r["status"] != "ok"]
    print(f"imported {len(rows) - len(failed)} of {len(rows)} scans into {out}"
          + (f"; failed (see {out}/report.csv): {failed}" if failed else ""))


COMMANDS = {"export": export, "import": import_}
"""``jasgan-nnunet <command>``."""


def cli() -> None:
    """``jasgan-nnunet``."""
    run(COMMANDS)


if __name__ == "__main__":
    cli()
