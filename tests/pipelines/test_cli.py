from octoscan.pipelines.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("octoscan ")


def test_no_command_is_usage_error(capsys):
    assert main([]) == 2
    assert "usage: octoscan" in capsys.readouterr().out


def test_unknown_command_is_usage_error(capsys):
    assert main(["no-such-command"]) == 2
    assert "invalid choice" in capsys.readouterr().err
