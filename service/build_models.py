"""Builds the default service's models into service/models/ (run by `make models`).

- wine.onnx: a scikit-learn classifier of the wine data set that ships inside scikit-learn
  (178 wines, 13 measurements, 3 cultivars), converted with skl2onnx. It takes the 13
  measurements as one float32 tensor named "input"; the service feeds it JSON records with
  named fields through the tensor input adapter.
- digits.pt2: a small CNN trained on scikit-learn's bundled 8x8 digits, saved as a
  torch.export archive. It takes a float32 tensor "input" of shape [batch, 1, 8, 8] (pixel
  values 0..16, as the data set has them) and returns logits and the predicted digit.

Everything is seeded, so a build gives the same models every time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: The wine data set's feature names, as the JSON records name them.
WINE_FEATURES = [
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
    "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
    "od280_od315", "proline",
]  # fmt: skip


def build_wine(out: Path) -> dict[str, float]:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_wine()
    features = data.data.astype(np.float32)
    labels = np.array([data.target_names[i] for i in data.target])
    train_x, test_x, train_y, test_y = train_test_split(features, labels, test_size=0.25, random_state=0, stratify=labels)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
    model.fit(train_x, train_y)
    onnx_model = to_onnx(
        model,
        initial_types=[("input", _float_tensor_type(len(WINE_FEATURES)))],
        options={id(model.steps[-1][1]): {"zipmap": False}},
        target_opset=17,
    )
    out.write_bytes(onnx_model.SerializeToString())
    return {"accuracy": float(model.score(test_x, test_y))}


def _float_tensor_type(width: int) -> object:
    from skl2onnx.common.data_types import FloatTensorType

    return FloatTensorType([None, width])


def build_digits(out: Path) -> dict[str, float]:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from digits import DigitsCNN  # service/digits.py: the module, also for state_dict loading

    torch.manual_seed(0)
    data = load_digits()
    images = data.images.astype(np.float32)[:, None, :, :]
    train_x, test_x, train_y, test_y = train_test_split(images, data.target, test_size=0.25, random_state=0)
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(train_x), torch.from_numpy(train_y)
    generator = torch.Generator().manual_seed(0)
    for _ in range(15):
        for batch in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            logits, _ = model(x[batch])
            torch.nn.functional.cross_entropy(logits, y[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.inference_mode():
        _, predicted = model(torch.from_numpy(test_x))
    accuracy = float((predicted.numpy() == test_y).mean())
    batch = torch.export.Dim("batch", min=1, max=4096)
    exported = torch.export.export(model, (torch.from_numpy(test_x[:2]),), dynamic_shapes=({0: batch},))
    torch.export.save(exported, str(out))
    return {"accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "models", help="where to write the models")
    parser.add_argument("--only", choices=["wine.onnx", "digits.pt2"], action="append",
                        help="build only these (the ONNX-only image builds wine.onnx, without torch)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    builders = {"wine.onnx": build_wine, "digits.pt2": build_digits}
    report = {name: build(args.out / name) for name, build in builders.items() if name in (args.only or builders)}
    (args.out / "build.json").write_text(json.dumps(report, indent=2) + "\n")
    for name, facts in report.items():
        print(f"built {args.out / name}: test accuracy {facts['accuracy']:.3f}")


if __name__ == "__main__":
    main()
