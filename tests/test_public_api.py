import groupconv


def test_all_is_pinned_and_sorted():
    assert groupconv.__all__ == [
        "Cost",
        "__version__",
        "conv",
        "conv_output_shape",
        "cost",
        "depthwise_conv",
        "reference",
        "resolve_padding",
        "separable_conv",
        "tf",
        "tricks",
    ]
    assert groupconv.__all__ == sorted(groupconv.__all__)
    for name in groupconv.__all__:
        assert hasattr(groupconv, name), name


def test_submodule_all():
    assert groupconv.tf.__all__ == ["conv2d", "depthwise_conv2d", "separable_conv2d"]
    assert groupconv.tricks.__all__ == [
        "grouped_conv_via_depthwise",
        "grouped_conv_via_split",
        "split_sum",
    ]


def test_version_is_a_string():
    parts = groupconv.__version__.split(".")
    assert len(parts) >= 2 and all(p.isdigit() for p in parts[:2])
