"""What keeps a model's reading when another site takes the inputs: a lesion detector that
answers from its strongest position, and training that hears each recording as other
microphones would have taken it."""

import pytest
import torch

from mlcore.config import ImageEncoderConfig
from mlcore.encoders.image import ImageEncoder
from mlcore.train import GAIN_DB, NOISE_FLOOR, _re_recorded

MELS = 40


def _detector(pooling: str) -> ImageEncoder:
    torch.manual_seed(0)
    config = ImageEncoderConfig(arch="detector", size=32, channels=(8, 8, 8), pooling=pooling)
    return ImageEncoder(config, dim=16).eval()


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_the_detector_gathers_its_positions_as_configured(pooling):
    detector = _detector(pooling)
    image = torch.randn(2, 1, 32, 32)
    with torch.inference_mode():
        positions = detector.network.features(image).flatten(start_dim=2)
        gathered = detector(image)
    expected = positions.amax(dim=2) if pooling == "max" else positions.mean(dim=2)
    torch.testing.assert_close(gathered, expected)


def test_noise_over_the_whole_slice_moves_the_strongest_position_less_than_the_mean():
    """Another scanner's noise: each position's rectified response to it adds up in a mean
    over 256 positions, while the strongest position is the nodule's (a detector that still
    averaged would move more than the one that reads the strongest position)."""
    rows, columns = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    nodule = torch.full((1, 1, 32, 32), -1.0)
    nodule[0, 0] += 1.5 * torch.exp(-((rows - 12) ** 2 + (columns - 20) ** 2) / 4.0)
    noisy = nodule + 0.1 * torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    moved = {}
    for pooling in ("mean", "max"):
        detector = _detector(pooling)
        with torch.inference_mode():
            clean, shifted = detector(nodule), detector(noisy)
            nothing = detector(torch.full((1, 1, 32, 32), -1.0))
        # how far the noise moved the reading, against how far the nodule moves it
        moved[pooling] = float((shifted - clean).norm(dim=1).mean() / (clean - nothing).norm())
    assert moved["max"] < moved["mean"]


def test_re_recording_changes_gain_noise_floor_and_band_within_their_ranges():
    voice = torch.full((400, 1, MELS, 20), -1.0)  # a loud voice for ten frames,
    voice[..., 10:] = -5.0  # then silence
    heard = _re_recorded(voice, torch.Generator().manual_seed(0))
    silence = heard[..., 10:]
    assert silence.min() >= NOISE_FLOOR[0] - 1e-4
    assert silence.max() <= NOISE_FLOOR[1] + 1e-4
    assert silence.std() > 0.2, "each recording its own room"
    # a bin in the middle of the band is never muffled: the gain, and at most a floor as loud
    middle = heard[:, 0, MELS // 2, 0]
    gain = GAIN_DB / 20
    assert middle.min() >= -1.0 - gain - 1e-4
    assert middle.max() <= -1.0 + gain + 0.16  # a floor as loud as the voice doubles its power
    assert middle.std() > 0.05, "each recording its own gain"
    # the lowest bin muffled in some recordings: a narrower band, for about half of them
    muffled = float((heard[:, 0, 0, 0] < middle - 0.5).float().mean())
    assert 0.2 <= muffled <= 0.6
