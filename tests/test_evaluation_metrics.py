"""Math of the evaluation metrics on constructed cases (no video decoding, CPU, a few seconds).

Stand-in networks are built here in the tests (a 5-number "sync network" that reads brightness and c0,
an average-pooling "identity backbone"); no third-party weights are involved. Where the real SyncNet
architecture is used its weights are random, only to check shapes and the state-dict contract.
"""

import math

import numpy as np
import pytest
import torch

from talkinghead.evaluation.fid import feature_statistics, fid_from_features, frechet_distance, load_inception
from talkinghead.evaluation.identity import csim, identity_embeddings, load_identity_network
from talkinghead.metrics import mouth_landmark_distance, psnr, ssim
from talkinghead.metrics.pose import head_pose_diversity
from talkinghead.models.iresnet import IResNet
from talkinghead.models.syncnet import (
    SyncNet,
    _mel_filterbank,
    load_syncnet,
    offset_distances,
    scores_from_distances,
    sync_scores,
    syncnet_mfcc,
)
from talkinghead.models.weights import WeightsError


def test_offset_search_recovers_a_known_shift_and_matches_a_direct_loop():
    generator = torch.Generator().manual_seed(0)
    lip = torch.randn(40, 8, generator=generator)
    for shift in (-4, 0, 3, 9):
        # audio_u = lip_{u + shift}: the lips of frame v show the sound of frame v − shift → offset = shift
        audio = torch.randn(40, 8, generator=generator)
        valid = [u for u in range(40) if 0 <= u + shift < 40]
        audio[valid] = lip[[u + shift for u in valid]]
        means = offset_distances(lip, audio, max_offset=15)
        direct = []
        for j in range(31):
            total = 0.0
            for v in range(40):
                u = v + j - 15
                other = audio[u] if 0 <= u < 40 else torch.zeros(8)
                total += float((lip[v] - other + 1e-6).norm())
            direct.append(total / 40)
        assert means.numpy() == pytest.approx(np.array(direct), rel=1e-5)
        scores = scores_from_distances(means)
        assert scores.offset == shift
        assert scores.lse_d == pytest.approx(min(direct), rel=1e-5)
        assert scores.lse_c == pytest.approx(float(np.median(direct)) - min(direct), rel=1e-5)


class BrightnessSyncNet:
    """Stand-in sync network (built for this test): a lip window's embedding is the mean brightness of its
    5 frames, an audio window's the c0 of MFCC columns 0, 4, …, 16 (one per video frame)."""

    def forward_lip(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.mean(dim=(1, 3, 4))  # (B, 3, 5, H, W) → (B, 5)

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        return mfcc[:, 0, 0, ::4]  # (B, 1, 13, 20) → (B, 5)


def test_stand_in_network_recovers_the_offset_encoded_in_frames_and_mfcc():
    rng = np.random.default_rng(1)
    signal = rng.uniform(0.0, 200.0, 100)  # s(t); frame t shows s(t + 30)
    frames = 40
    for shift in (-5, 0, 6):
        crops = np.repeat(signal[30 : 30 + frames, None, None, None], 3, axis=-1)
        crops = np.broadcast_to(crops, (frames, 8, 8, 3)).astype(np.uint8)
        mfcc = torch.zeros(13, 4 * frames + 3)
        columns = np.arange(mfcc.shape[1])
        mfcc[0] = torch.from_numpy(np.floor(signal[30 + columns // 4 + shift])).float()  # sound of frame t + shift
        scores = sync_scores(BrightnessSyncNet(), crops, mfcc)
        assert scores.offset == shift
        assert scores.lse_c > 10.0
        assert scores.lse_d < float(scores.mean_distances.median()) - 10.0


def test_sync_scores_need_six_frames():
    with pytest.raises(ValueError, match="needs at least 6"):
        sync_scores(BrightnessSyncNet(), np.zeros((5, 8, 8, 3), np.uint8), torch.zeros(13, 40))


def test_syncnet_shapes_and_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    network = SyncNet().eval()
    state = network.state_dict()
    assert tuple(state["netcnnaud.18.weight"].shape) == (512, 256, 5, 4)
    assert tuple(state["netcnnlip.0.weight"].shape) == (96, 3, 5, 7, 7)
    assert tuple(state["netcnnlip.18.weight"].shape) == (512, 256, 1, 6, 6)
    assert tuple(state["netfclip.3.weight"].shape) == (1024, 512)
    assert sum(p.numel() for p in network.parameters()) == 13_631_616
    path = tmp_path / "syncnet_v2.model"
    torch.save(state, path)
    loaded = load_syncnet(path)
    mfcc, frames = torch.randn(2, 1, 13, 20), torch.rand(2, 3, 5, 224, 224) * 255
    with torch.no_grad():
        assert loaded.forward_aud(mfcc).shape == (2, 1024)
        assert torch.equal(loaded.forward_lip(frames), network.forward_lip(frames))


def test_weight_files_that_do_not_fit_are_one_line_errors(tmp_path):
    with pytest.raises(WeightsError, match="no such file"):
        load_syncnet(tmp_path / "absent.model")
    corrupt = tmp_path / "corrupt.model"
    for content in (b"\x80\x04 definitely not a checkpoint", b"PK\x03\x04 truncated archive"):
        corrupt.write_bytes(content)
        with pytest.raises(WeightsError, match="not a readable torch state dict"):
            load_syncnet(corrupt)
    state = SyncNet().state_dict()
    old_format = {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}
    torch.save(old_format, tmp_path / "pre_0_4_1.model")  # BatchNorm counters absent: still loads
    assert torch.equal(load_syncnet(tmp_path / "pre_0_4_1.model").netfclip[3].weight, state["netfclip.3.weight"])
    torch.save(SyncNet(), tmp_path / "pickled_module.model")
    with pytest.raises(WeightsError, match="pickles Python objects"):
        load_syncnet(tmp_path / "pickled_module.model")
    del state["netfclip.3.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "partial.model")
    with pytest.raises(WeightsError) as error:
        load_syncnet(tmp_path / "partial.model")
    message = str(error.value)
    assert "missing keys 1 (netfclip.3.bias)" in message and "unexpected keys 1 (extra.weight)" in message
    assert "\n" not in message
    torch.save({"fc.weight": torch.zeros(3, 2)}, tmp_path / "tiny.pth")
    with pytest.raises(WeightsError, match="missing keys"):
        load_inception(tmp_path / "tiny.pth")


def test_mfcc_framing_energy_and_filterbank():
    rate = 16000
    samples = 16000 + 123
    audio = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(samples) / rate)).astype(np.float32)
    mfcc = syncnet_mfcc(audio)
    assert mfcc.shape == (13, 1 + math.ceil((samples - 400) / 160))  # 100 frames
    # c0 is the log energy of the pre-emphasised 16-bit PCM 25-ms frame in a 512-point spectrum / 512
    signal = np.rint(audio.astype(np.float64) * 32768)
    emphasised = np.append(signal[0], signal[1:] - 0.97 * signal[:-1])
    for k in (0, 37, 99):
        frame = np.zeros(400)
        chunk = emphasised[160 * k : 160 * k + 400]
        frame[: len(chunk)] = chunk
        energy = (np.abs(np.fft.rfft(frame, 512)) ** 2).sum() / 512
        assert float(mfcc[0, k]) == pytest.approx(math.log(energy), rel=1e-5)
    bank = _mel_filterbank()  # (257, 26) triangles sharing corners: they sum to 1 between the peaks
    peaks = bank.argmax(axis=0)
    assert bank.shape == (257, 26) and bank.max(axis=0) == pytest.approx(np.ones(26))
    assert bank[peaks[0] : peaks[-1] + 1].sum(axis=1) == pytest.approx(np.ones(peaks[-1] - peaks[0] + 1))


def test_frechet_distance_closed_forms():
    dims = 16
    rng = np.random.default_rng(2)
    features = rng.normal(size=(500, dims))
    assert fid_from_features(features, features) == pytest.approx(0.0, abs=1e-8)
    values = [fid_from_features(features, features + shift) for shift in (0.1, 0.5, 1.0)]
    # same covariance, mean moved by c·1 → FID = D·c²
    assert values == pytest.approx([dims * 0.01, dims * 0.25, dims * 1.0], rel=1e-6)
    mu = np.zeros(dims)
    for scale in (0.5, 2.0):
        # N(0, I) vs N(0, s²I) → D·(1 − s)²
        fid = frechet_distance(mu, np.eye(dims), mu, scale**2 * np.eye(dims))
        assert fid == pytest.approx(dims * (1 - scale) ** 2, rel=1e-9)
    few, other = rng.normal(size=(20, 64)), rng.normal(size=(30, 64)) * 1.5 + 0.2  # fewer vectors than dims
    assert fid_from_features(few, other) == pytest.approx(
        frechet_distance(*feature_statistics(few), *feature_statistics(other)), rel=1e-7
    )
    mean, covariance = feature_statistics(features)
    assert covariance == pytest.approx(np.cov(features.T), rel=1e-12)
    with pytest.raises(ValueError, match="at least two"):
        feature_statistics(features[:1])


def test_csim_of_identical_opposite_and_orthogonal_embeddings():
    embedding = torch.tensor([0.3, -1.2, 2.0, 0.5])
    assert csim(embedding, embedding.repeat(5, 1)) == pytest.approx(1.0, abs=1e-6)
    assert csim(embedding, 3.0 * embedding[None]) == pytest.approx(1.0, abs=1e-6)
    assert csim(embedding, -embedding[None]) == pytest.approx(-1.0, abs=1e-6)
    orthogonal = torch.tensor([[1.2, 0.3, 0.0, 0.0]])
    assert csim(embedding, orthogonal) == pytest.approx(0.0, abs=1e-6)
    assert csim(embedding, torch.stack([embedding, orthogonal[0]])) == pytest.approx(0.5, abs=1e-6)


def save_backbone(path, blocks=(1, 1, 1, 1), embedding_dim=16) -> IResNet:
    """A stand-in ArcFace backbone built for the test: an IResNet of ``blocks`` with random weights and BatchNorm
    statistics, saved as its state dict (the model zoo's ``backbone.pth`` format)."""
    torch.manual_seed(5)
    network = IResNet(blocks, embedding_dim)
    for module in network.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    torch.save(network.state_dict(), path)
    return network.eval()


def test_identity_backbone_loads_a_model_zoo_state_dict_and_refuses_others(tmp_path):
    """The depth (blocks per stage) and embedding size are read from the keys: the loaded network's embeddings equal
    the saved one's on the same aligned faces (scaled to [−1, 1]); a state dict of another network, a file pickling
    Python objects and a text file are one-line errors naming the file."""
    path = tmp_path / "backbone.pth"
    saved = save_backbone(path, blocks=(2, 1, 3, 1))
    network = load_identity_network(path)
    assert [len(getattr(network, f"layer{i}")) for i in range(1, 5)] == [2, 1, 3, 1]
    faces = np.random.default_rng(3).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    embeddings = identity_embeddings(network, faces, batch_size=2)
    with torch.no_grad():
        expected = saved(torch.from_numpy(faces).permute(0, 3, 1, 2).float().div(127.5).sub(1.0))
    assert embeddings.shape == (5, 16)
    torch.testing.assert_close(embeddings, expected, atol=1e-5, rtol=1e-5)
    assert csim(embeddings[0], embeddings[:1]) == pytest.approx(1.0, abs=1e-6)
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "linear.pth")
    with pytest.raises(WeightsError, match="linear.pth.*not an IResNet state dict"):
        load_identity_network(tmp_path / "linear.pth")
    state = torch.load(path, weights_only=True)
    state.pop("layer2.0.prelu.weight")
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(WeightsError, match=r"partial.pth.*missing keys 1 \(layer2.0.prelu.weight\)"):
        load_identity_network(tmp_path / "partial.pth")
    torch.save({"net": saved}, tmp_path / "pickled.pth")
    with pytest.raises(WeightsError, match="pickled.pth.*pickles Python objects"):
        load_identity_network(tmp_path / "pickled.pth")
    (tmp_path / "text.pth").write_text("not weights")
    with pytest.raises(WeightsError, match="text.pth.*not a readable torch state dict"):
        load_identity_network(tmp_path / "text.pth")
    with pytest.raises(WeightsError, match="no such file"):
        load_identity_network(tmp_path / "absent.pth")
    program = torch.export.export(torch.nn.Flatten(), (torch.zeros(2, 3, 112, 112),))
    torch.export.save(program, tmp_path / "backbone.pt2")
    with pytest.raises(WeightsError, match="backbone.pt2.*a torch.export archive, which is not read"):
        load_identity_network(tmp_path / "backbone.pt2")


def test_iresnet_has_the_model_zoo_layout():
    """The parameter names and shapes of insightface's ``arcface_torch`` r18 (``backbone.pth``), which is what lets
    its files load strictly: 8 blocks, a strided 1 × 1 projection opening every stage, the 512 × 7 × 7 → 512 layer."""
    state = IResNet((2, 2, 2, 2)).state_dict()
    shapes = {key: tuple(value.shape) for key, value in state.items()}
    assert IResNet.architecture(state) == ((2, 2, 2, 2), 512)
    assert {key for key in shapes if key.endswith("conv1.weight")} == {"conv1.weight"} | {
        f"layer{stage}.{block}.conv1.weight" for stage in range(1, 5) for block in range(2)
    }
    assert [shapes[f"layer{stage}.0.downsample.0.weight"] for stage in range(1, 5)] == [
        (64, 64, 1, 1), (128, 64, 1, 1), (256, 128, 1, 1), (512, 256, 1, 1),
    ]  # fmt: skip
    assert not any(key.startswith(f"layer{stage}.1.downsample") for key in shapes for stage in range(1, 5))
    assert shapes["conv1.weight"] == (64, 3, 3, 3) and shapes["prelu.weight"] == (64,)
    assert shapes["layer3.1.prelu.weight"] == (256,) and shapes["layer4.0.conv2.weight"] == (512, 512, 3, 3)
    assert shapes["bn2.running_var"] == (512,) and shapes["fc.weight"] == (512, 512 * 7 * 7)
    # entries: stem conv + BN (5) + PReLU; a block's 3 BNs, 2 convs and PReLU (18), 6 more with a projection; head
    assert shapes["features.running_mean"] == (512,) and len(state) == 7 + 4 * (18 + 6) + 4 * 18 + (5 + 2 + 5)
    assert IResNet((2, 2, 2, 2))(torch.zeros(2, 3, 112, 112)).shape == (2, 512)


def test_head_pose_diversity_closed_form():
    roll = math.radians(6.0)
    pose = torch.zeros(10, 6)
    pose[1::2, 2] = roll  # ‖angles‖ alternates 0°, 6° → variance 6²/4 = 9 deg²
    assert float(head_pose_diversity(pose)) == pytest.approx(9.0, rel=1e-5)
    pose[:, 0] = math.radians(3.0)  # constant pitch 3°: norms 3° and √45° → variance (√45 − 3)²/4
    assert float(head_pose_diversity(pose)) == pytest.approx((math.sqrt(45.0) - 3.0) ** 2 / 4, rel=1e-5)


def test_mouth_landmark_distance_closed_forms():
    target = torch.randn(2, 6, 40, 2)
    moved = target + torch.tensor([3.0, 4.0])
    assert float(mouth_landmark_distance(moved, target, centre=False).mean()) == pytest.approx(5.0, rel=1e-5)
    assert float(mouth_landmark_distance(moved, target).abs().max()) == pytest.approx(0.0, abs=1e-5)
    offsets = torch.zeros(40, 2)
    offsets[:20, 1], offsets[20:, 1] = 2.0, -2.0  # lips pulled apart, centroid unchanged
    assert mouth_landmark_distance(target + offsets, target).numpy() == pytest.approx([2.0, 2.0], rel=1e-5)


def test_psnr_and_ssim_closed_forms():
    image = torch.rand(3, 3, 48, 48) * 0.8
    assert psnr(image + 0.1, image).numpy() == pytest.approx([20.0] * 3, rel=1e-5)  # MSE 0.01 → 20 dB
    assert ssim(image, image).numpy() == pytest.approx([1.0] * 3, abs=1e-6)
    noisy = (image + 0.2 * torch.randn_like(image)).clamp(0, 1)
    assert float(ssim(noisy, image).max()) < 0.9
