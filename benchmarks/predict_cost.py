"""What one predicted image-view costs against one trained image, on this machine's device: the ratio behind
kit.progress.TRAIN_COST (the ETA's weight of the prediction phase). Alternating, in one process:

    python benchmarks/predict_cost.py [--rounds 4] [--rows 8400] [--model kitnet]

Each round trains the recipe's model one epoch on the installed data's first `--rows` rows, then predicts
`--rows` test images through kit's own prediction (kit.predicting.predict, one view). The first round (which
compiles) is not counted; the median images/s of each and their ratio are printed, the ratio last as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np


def run(rounds: int, rows: int, model: str) -> dict[str, float]:
    from kit import config, data, predicting, training
    from kit.device import import_keras_quietly, setup

    import_keras_quietly()
    comp = data.load_competition()
    device = setup()
    rows = min(rows, len(comp.train_labels), len(comp.test_images))
    x, y = comp.train_images[:rows], training.one_hot(comp.train_labels[:rows])
    x_val, y_val = comp.train_images[-1024:], training.one_hot(comp.train_labels[-1024:])
    r = dataclasses.replace(config.recipe(model), epochs=1)
    net = training.compile_model(r, device, steps_per_epoch=-(-rows // r.batch_size), seed=0)
    trained, predicted = [], []
    print(f"device: {device.describe()}", flush=True)
    for n in range(rounds):
        row = training.fit(net, x, y, x_val, y_val, r, device, seed=n)[0]
        start = time.perf_counter()
        predicting.predict(net, comp.test_images[:rows], [config.IDENTITY], device.strategy is not None)
        rate = rows / (time.perf_counter() - start)
        print(f"round {n + 1}{' (compiles, not counted)' if n == 0 else ''}: trained {row['images_per_s']:,.0f} "
              f"img/s, predicted {rate:,.0f} img/s", flush=True)  # fmt: skip
        if n > 0:
            trained.append(row["images_per_s"])
            predicted.append(rate)
    train_rate, predict_rate = float(np.median(trained)), float(np.median(predicted))
    ratio = predict_rate / train_rate
    print(f"median: trained {train_rate:,.0f} img/s, predicted {predict_rate:,.0f} img/s: one trained image costs "
          f"{ratio:.2f} predicted ones (kit.progress.TRAIN_COST)")  # fmt: skip
    return {"train_img_s": train_rate, "predict_img_s": predict_rate, "ratio": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4, help="rounds (>= 2; the first is not counted)")
    parser.add_argument("--rows", type=int, default=8_400)
    parser.add_argument("--model", default="kitnet")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be 2 or more")
    print(json.dumps(run(args.rounds, args.rows, args.model)))


if __name__ == "__main__":
    main()
