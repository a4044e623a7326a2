import gateway.console


def test_the_console_publishes_only_its_routes() -> None:
    assert gateway.console.__all__ == ["console_routes"]
