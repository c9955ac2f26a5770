"""Teachers: the registry, real ImageNet weights (checked on real photos) and the dense classifier."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata
from torch import nn

from deltanas.errors import ConfigError
from deltanas.teachers import Teacher, TeacherInfo, TeacherRegistry, create_teacher, list_teachers

TEACHERS = list_teachers()

# scikit-image's bundled photos and the ImageNet classes they show
PHOTOS = {
    "chelsea": (skdata.chelsea, range(281, 286)),  # tabby / tiger / Persian / Siamese / Egyptian cat
    "coffee": (skdata.coffee, range(967, 968)),  # espresso
}


@pytest.fixture(scope="module")
def teachers() -> dict[str, Teacher]:
    cache: dict[str, Teacher] = {}

    def get(name: str) -> Teacher:
        if name not in cache:
            cache[name] = create_teacher(name)
        return cache[name]

    return get  # type: ignore[return-value]


def photo(loader, size: tuple[int, int]) -> torch.Tensor:
    x = torch.from_numpy(loader()).permute(2, 0, 1).float()[None] / 255.0
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def test_the_builtin_teachers_are_registered():
    assert "efficientnet_lite0" in TEACHERS
    assert TEACHERS == sorted(TEACHERS)


@pytest.mark.parametrize("name", TEACHERS)
def test_real_weights_classify_real_photos(teachers, name):
    teacher = teachers(name)
    x = torch.cat([photo(loader, teacher.info.input_size) for loader, _ in PHOTOS.values()])
    with torch.no_grad():
        top1 = teacher(x).argmax(dim=1).tolist()
    for (photo_name, (_, classes)), predicted in zip(PHOTOS.items(), top1):
        assert predicted in classes, f"{name} on {photo_name}: top-1 {predicted}"


@pytest.mark.parametrize("name", TEACHERS)
def test_teacher_is_frozen_in_eval_mode_and_describes_itself(teachers, name):
    teacher = teachers(name)
    assert isinstance(teacher, Teacher)
    assert not any(m.training for m in teacher.modules())
    params = list(teacher.parameters())
    assert params and not any(p.requires_grad for p in params)
    info = teacher.info
    assert isinstance(info, TeacherInfo) and info.name == name and info.num_classes == 1000
    assert info.input_size[0] >= 224 and info.source


@pytest.mark.parametrize("name", TEACHERS)
def test_dense_logits_apply_the_classifier_at_every_position(teachers, name):
    teacher = teachers(name)
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = teacher.forward_features(teacher.normalize(x))
        dense = teacher.dense_logits(x)
        n, c, h, w = features.shape
        assert dense.shape == (2, 1000, h, w) and (h, w) == (2, 3)
        torch.testing.assert_close(dense, teacher.dense_logits_from_features(features))
        for i in range(h):
            for j in range(w):
                torch.testing.assert_close(dense[:, :, i, j], teacher.classify(features[:, :, i, j]),
                                           rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(teacher(x), teacher.classify(features.mean(dim=(2, 3))), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", TEACHERS)
def test_normalize_maps_unit_rgb_with_the_teachers_statistics(teachers, name):
    teacher = teachers(name)
    x = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    mean = torch.tensor(teacher.info.mean).view(1, 3, 1, 1)
    std = torch.tensor(teacher.info.std).view(1, 3, 1, 1)
    torch.testing.assert_close(teacher.normalize(x), (x - mean) / std)


def test_unknown_teacher_lists_the_available_names():
    with pytest.raises(ConfigError) as info:
        create_teacher("resnet9000")
    message = str(info.value)
    assert "resnet9000" in message
    for name in TEACHERS:
        assert name in message


def test_unknown_keyword_lists_the_accepted_ones():
    with pytest.raises(ConfigError) as info:
        create_teacher("efficientnet_lite0", width=2)
    message = str(info.value)
    assert "width" in message and "pretrained" in message
    assert "_name" not in message  # private factory parameters are not offered


class TinyTeacher(Teacher):
    def __init__(self, classes: int = 4) -> None:
        super().__init__(TeacherInfo("tiny", (8, 8), (0.5,) * 3, (0.25,) * 3, classes, "test"))
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(pooled)


def test_a_private_registry_registers_builds_and_refuses_duplicates():
    registry = TeacherRegistry()
    assert registry.names() == []

    def factory(classes: int = 4) -> TinyTeacher:
        return TinyTeacher(classes)  # returned in train mode, trainable: the registry must fix that

    assert registry.register("tiny", factory) is factory
    assert registry.names() == ["tiny"]
    assert "tiny" not in list_teachers()  # the default registry is untouched
    teacher = registry.create("tiny", classes=7)
    assert isinstance(teacher, TinyTeacher) and teacher.info.num_classes == 7
    assert not any(m.training for m in teacher.modules())
    assert not any(p.requires_grad for p in teacher.parameters())
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert teacher(x).shape == (2, 7) and teacher.dense_logits(x).shape == (2, 7, 8, 8)
    with pytest.raises((ValueError, ConfigError), match="tiny"):
        registry.register("tiny", factory)
    with pytest.raises(ConfigError, match="tiny"):
        registry.create("other")
    with pytest.raises(ConfigError, match="classes"):
        registry.create("tiny", pretrained=True)
