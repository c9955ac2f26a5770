"""Every mistake on the user-model path is one ConfigError line that names what was wrong."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from deltanas.errors import ConfigError
from deltanas.teachers import TeacherRegistry, create_teacher, list_teachers
from tests._nets import TinyResNet, build_resnet

RESNET = "tests._nets:build_resnet"
USER = "tests.teachers._user_models"


def refused(name: str, *fragments: str, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        create_teacher(name, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("spec", ["tests._nets:", ":build_resnet", "a:b:c"])
def test_a_malformed_name_says_module_function(spec):
    refused(spec, "module:function")


def test_unknown_module_missing_function_and_not_callable():
    refused("tests.no_such_module:build", "cannot import module 'tests.no_such_module'", "PYTHONPATH")
    refused("tests._nets:build_resnet50", "module 'tests._nets' has no function 'build_resnet50'")
    refused(f"{USER}:NOT_CALLABLE", "'NOT_CALLABLE'", "is a int, not a function")


def test_a_factory_that_fails_or_returns_no_module():
    refused(f"{USER}:failing", "the factory failed", "RuntimeError", "could not find its config")
    refused(f"{USER}:needs_arguments", "the factory failed, called with no arguments", "TypeError")
    refused(f"{USER}:not_a_module", "returned a dict, not a torch.nn.Module")


def test_outputs_that_are_neither_logits_nor_class_maps():
    refused(f"{USER}:tuple_output", "returns tuple", "(N, classes) logits")
    refused(f"{USER}:sequence_output", "returns (2, 50176, 4)", "(N, classes, H, W) class map")


def test_classifiers_that_cannot_be_split_at_a_global_pool():
    refused(f"{USER}:no_pool", "no global average pooling", "nn.AdaptiveAvgPool2d(1)", input_size=(32, 32))
    refused(f"{USER}:bypass", "reads the input other than through the last global pool")
    refused(f"{USER}:conv_head", "convolution(s) ['classifier'] follow the last global pool")
    refused(f"{USER}:untraceable", "torch.fx cannot trace", "control flow", input_size=(16, 16))


def test_a_probe_frame_the_model_cannot_take_says_input_size():
    refused(f"{USER}:no_pool", "fails on a (2, 3, 224, 224) frame", "RuntimeError", "pass input_size")


def _state(**changes) -> dict[str, torch.Tensor]:
    state = build_resnet().state_dict()
    state.update(changes)
    return {k: v for k, v in state.items() if v is not None}


def test_weights_that_do_not_fit_name_the_keys(tmp_path):
    missing = tmp_path / "missing.safetensors"
    save_file(_state(**{"fc.bias": None}), str(missing))
    refused(RESNET, f"teacher '{RESNET}': {missing.resolve()} does not fit the model", "missing keys ['fc.bias']",
            weights=missing)

    extra = tmp_path / "extra.pth"
    torch.save(_state(**{"head.weight": torch.zeros(2)}), extra)
    refused(RESNET, "unexpected keys ['head.weight']", weights=extra)

    other = tmp_path / "seven.pt"
    torch.save(TinyResNet(num_classes=7).state_dict(), other)
    refused(RESNET, "wrong shapes ['fc.weight (7, 16) vs (10, 16)'", weights=other)


def test_weight_files_that_are_not_state_dicts(tmp_path):
    refused(RESNET, f"teacher '{RESNET}': ", "absent.pth: no such weights file", weights=tmp_path / "absent.pth")
    npz = tmp_path / "weights.npz"
    npz.write_bytes(b"PK")
    refused(RESNET, "must be a .safetensors, .pt, .pth file", weights=npz)

    pickled = tmp_path / "module.pth"  # a whole pickled module: never unpickled
    torch.save(build_resnet(), pickled)
    refused(RESNET, "not a plain state dict", "weights_only=True", "save model.state_dict()", weights=pickled)

    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"model": build_resnet().state_dict(), "epoch": 3}, checkpoint)
    refused(RESNET, "not a state dict", "'model'", "'epoch'", weights=checkpoint)

    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    refused(RESNET, "holds a Tensor, not a state dict", weights=tensor)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not safetensors at all")
    refused(RESNET, "not a readable safetensors file", weights=garbage)


def test_bad_keyword_values_and_unknown_keywords():
    refused(RESNET, "input_size must be (height, width)", input_size=(224,))
    refused(RESNET, "std must be three numbers", "positive", std=(0.2, 0.0, 0.2))
    refused(RESNET, "mean must be three numbers", mean=(0.5, 0.5))
    message = refused(RESNET, "takes no argument(s) ['num_classes']", num_classes=3)
    for accepted in ("weights", "input_size", "mean", "std"):
        assert accepted in message


def test_registered_names_keep_their_messages_and_their_signature_check():
    message = refused("resnet9000", "unknown teacher 'resnet9000'; available: ")
    assert all(name in message for name in list_teachers())
    refused("efficientnet_lite0", "takes no argument(s) ['weights']; it takes ['pretrained']", weights="x.pth")
    refused("mobilenet_v2", "takes no argument(s) ['input_size']", input_size=(96, 160))


def test_a_registry_refuses_names_with_a_colon():
    with pytest.raises(ValueError, match="module:function"):
        TeacherRegistry().register("pkg:model", build_resnet)
