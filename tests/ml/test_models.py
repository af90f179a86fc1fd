"""The segmenter's shape contract, determinism under a seed, and Monte-Carlo dropout that
actually varies while evaluation without dropout does not."""

import pytest
import torch

from ml.config import CONFIGS, TrainConfig, get_config, pick
from ml.models import build_model, mc_probabilities


def test_configs_are_typed_and_checked() -> None:
    tiny = get_config("tiny", seed=3)
    assert tiny.seed == 3
    assert tiny.channels == 9  # FLAIR, T1, T2 of the slice and one neighbour each side
    assert pick(cuda=True).name == "gpu"
    assert pick(cuda=False).name == "cpu"
    assert set(CONFIGS) == {"tiny", "cpu", "gpu"}
    with pytest.raises(ValueError, match="unknown config 'huge'; known: cpu, gpu, tiny"):
        get_config("huge")
    with pytest.raises(ValueError, match="multiple of 16"):
        TrainConfig(name="bad", patch=50)


def test_model_shapes_seed_and_mc_dropout() -> None:
    config = get_config("tiny")
    images = torch.randn(2, config.channels, 32, 32)
    model = build_model(config)
    again = build_model(config)
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters(), strict=True)
    )
    model.eval()
    with torch.no_grad():
        logits = model(images)
        assert logits.shape == (2, 1, 32, 32)
        assert torch.equal(model(images), logits)  # evaluation: deterministic
    samples = mc_probabilities(model, images, samples=4)
    assert samples.shape == (4, 2, 32, 32)
    assert float(samples.min()) >= 0.0
    assert float(samples.max()) <= 1.0
    assert float(samples.std(dim=0).mean()) > 0  # dropout on: the passes differ
    # However the samples are split into forward passes, they come out sample-major.
    for chunk in (1, 2, 5, 100):
        torch.manual_seed(0)
        split = mc_probabilities(model, images, samples=5, chunk=chunk)
        assert split.shape == (5, 2, 32, 32)
        assert float(split.std(dim=0).mean()) > 0
    model.eval()
    with torch.no_grad():  # a model without dropout gives T identical samples, in order
        plain = build_model(get_config("tiny", dropout=0.0))
        expected = torch.sigmoid(plain.eval()(images))[:, 0]
        for chunk in (1, 3, 100):
            again = mc_probabilities(plain, images, samples=3, chunk=chunk)
            assert torch.allclose(again, expected.expand(3, -1, -1, -1), atol=1e-6)


@pytest.mark.parametrize("name", ["tiny", "cpu"])
def test_in_evaluation_a_pixel_depends_on_its_neighbourhood_only(name: str) -> None:
    """Normalisation from training's statistics, not each image's own (instance norm): a
    change far away leaves a pixel's output exactly as it was, so a whole slice is segmented
    as the patches training saw were."""
    config = get_config(name)
    model = build_model(config).eval()
    images = torch.randn(1, config.channels, 64, 512)
    changed = images.clone()
    changed[..., 320:] = 5.0
    with torch.no_grad():
        difference = (model(images) - model(changed)).abs()[0, 0]
    assert float(difference[:, :64].max()) == 0.0
    assert float(difference[:, 320:].max()) > 0.0
    with pytest.raises(ValueError, match="norm is one of"):
        TrainConfig(name="bad", norm="layer")
