"""The networks of the evaluation zoo (2k to 6k parameters) and their flattened weights."""

from __future__ import annotations

from collections import OrderedDict

import zoo_data

ARCHS = ("mlp", "cnn", "gru")
ARCH_DATASETS = {"mlp": {"digits", "wine"}, "cnn": {"digits"}, "gru": {"sequence"}}


def build_model(arch: str, dataset: str):
    """A fresh ``torch.nn.Module`` of ``arch`` for ``dataset`` (2k to 6k parameters)."""
    from torch import nn

    if dataset not in ARCH_DATASETS.get(arch, ()):
        raise ValueError(f"arch {arch!r} does not take dataset {dataset!r}; pairs: {ARCH_DATASETS}.")
    n_classes = zoo_data.N_CLASSES[dataset]
    if arch == "mlp":
        n_inputs = 64 if dataset == "digits" else 13
        hidden = 64
        layers = [("flatten", nn.Flatten()), ("fc1", nn.Linear(n_inputs, hidden)), ("relu1", nn.ReLU())]
        if dataset == "wine":
            layers += [("fc2", nn.Linear(hidden, hidden)), ("relu2", nn.ReLU())]
        layers += [("out", nn.Linear(hidden, n_classes))]
        return nn.Sequential(OrderedDict(layers))
    if arch == "cnn":
        layers = [
            ("conv1", nn.Conv2d(1, 8, kernel_size=3, padding=1)),
            ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(8, 16, kernel_size=3, padding=1)),
            ("relu2", nn.ReLU()),
            ("pool", nn.MaxPool2d(2)),
            ("flatten", nn.Flatten()),
            ("out", nn.Linear(16 * 4 * 4, n_classes)),
        ]
        return nn.Sequential(OrderedDict(layers))

    class SequenceGRU(nn.Module):
        """Token embedding (16), a one-layer GRU (32), a linear read-out of its last state."""

        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(zoo_data.SEQUENCE_VOCABULARY, 16)
            self.gru = nn.GRU(16, 32, batch_first=True)
            self.out = nn.Linear(32, n_classes)

        def forward(self, tokens):
            _, last = self.gru(self.embed(tokens))
            return self.out(last[0])

    return SequenceGRU()
