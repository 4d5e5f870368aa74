"""`make run`'s steps before the server starts, run as a new user runs them (their own
processes, embedded defaults, as the live platform is set up): they print what happened and
nothing a user cannot act on."""


def test_setting_up_the_demo_prints_no_library_noise(live_platform):
    """No torchao kernel notices, no torch deprecation lines, no progress bars for weights read
    from a local directory, no version banners, no system-check warnings."""
    output = live_platform.first_run
    assert "test macro-F1" in output
    assert "past visits analysed" in output
    library = ("torchao", "_pytree", "register_constant", "Loading weights", "AXES")
    for noise in (*library, "System check identified"):
        assert noise not in output, output
