"""The registry behind every extension point."""

import pytest

from fastreid.utils.registry import Registry


def test_register_as_decorator_and_get_by_name():
    reg = Registry("THING")

    @reg.register()
    class Alpha:
        pass

    assert reg.get("Alpha") is Alpha
    assert "Alpha" in reg and len(reg) == 1


def test_register_under_an_alias():
    reg = Registry("THING")

    def build():
        return 1

    reg.register(build, name="alias")
    assert reg.get("alias")() == 1


def test_unknown_name_lists_registered_names_and_suggests():
    reg = Registry("BACKBONE")
    reg.register(lambda: None, name="build_resnet_backbone")
    reg.register(lambda: None, name="build_osnet_backbone")
    with pytest.raises(KeyError) as err:
        reg.get("build_resnet_bakbone")
    message = str(err.value)
    assert "BACKBONE" in message
    assert "Did you mean: build_resnet_backbone" in message
    assert "build_osnet_backbone" in message


def test_registering_a_different_object_twice_under_one_name_fails():
    reg = Registry("THING")
    reg.register(lambda: 1, name="x")
    with pytest.raises(KeyError, match="already registered"):
        reg.register(lambda: 2, name="x")
