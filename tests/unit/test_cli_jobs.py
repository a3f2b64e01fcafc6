"""--jobs and its options: parsed into config.JobsConfig, or one ConfigError line;
main.validate_jobs checks the handler and state directories (exit 2 on a problem)."""

import os

import pytest

from chariotd import cli
from chariotd.config import ConfigError
from chariotd.main import validate_jobs

BASE = ["--clientid=dev1", "--cacert=/ca.pem", "--certstore=/cs"]


def test_jobs_flags_parse():
    config = cli.parse(BASE + ["--jobs=dev1:/etc/jobs", "--jobs=dev2:/etc/jobs2",
                               "--jobs-allow-commands", "--job-timeout=2.5",
                               "--jobs-state=/var/lib/j"])
    assert config.jobs.things == (("dev1", "/etc/jobs"), ("dev2", "/etc/jobs2"))
    assert config.jobs.allow_commands and config.jobs.timeout == 2.5
    assert config.jobs.state_of("/etc/jobs") == "/var/lib/j"
    plain = cli.parse(BASE + ["--jobs=dev1:/etc/jobs"])
    assert plain.jobs.timeout == 3600 and not plain.jobs.allow_commands
    assert plain.jobs.state_of("/etc/jobs") == "/etc/jobs/.chariotd-jobs"
    assert cli.parse(BASE).jobs is None


@pytest.mark.parametrize("args,words", [
    (["--jobs=dev1"], "expected THING:DIR"),
    (["--jobs=bad/thing:/x"], "not a valid thing name"),
    (["--jobs=dev1:/a", "--jobs=dev1:/b"], "given twice"),
    (["--jobs=dev1:/a", "--job-timeout=0"], "--job-timeout=0"),
    (["--jobs=dev1:/a", "--job-timeout=nan"], "--job-timeout=nan"),
    (["--jobs=dev1:/a", "--job-timeout=999999999"], "at most"),
    (["--job-timeout=10"], "need --jobs"),
    (["--jobs-allow-commands"], "need --jobs"),
])
def test_bad_jobs_flags_are_one_line(args, words):
    with pytest.raises(ConfigError, match=words):
        cli.parse(BASE + args)


def test_validate_jobs_directories(tmp_path):
    os.chmod(tmp_path, 0o755)
    handlers = tmp_path / "h"
    handlers.mkdir(mode=0o755)
    config = cli.parse(BASE + [f"--jobs=dev1:{handlers}"])
    validate_jobs(config)
    state = handlers / ".chariotd-jobs"
    assert state.is_dir() and (state.stat().st_mode & 0o777) == 0o711
    os.chmod(handlers, 0o775)
    with pytest.raises(ConfigError, match="not trusted"):
        validate_jobs(config)
    os.chmod(handlers, 0o755)
    with pytest.raises(ConfigError, match="not a directory"):
        validate_jobs(cli.parse(BASE + [f"--jobs=dev1:{tmp_path / 'missing'}"]))
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="--jobs-state"):
        validate_jobs(cli.parse(BASE + [f"--jobs=dev1:{handlers}",
                                        f"--jobs-state={tmp_path / 'file'}"]))
