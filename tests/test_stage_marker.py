"""`udistil stage-marker`: run.sh's skip-if-done markers for stages 1 and 2."""
from udistil.bin.main import main


def test_a_marker_matches_its_options_and_a_stale_one_stops_or_is_redone(tmp_path, capsys):
    marker = str(tmp_path / ".done")
    assert main(["stage-marker", "check", marker, "seed=1", "plan=aa"]) == 3  # not done yet
    assert main(["stage-marker", "write", marker, "seed=1", "plan=aa"]) == 0
    assert main(["stage-marker", "check", marker, "seed=1", "plan=aa"]) == 0
    capsys.readouterr()
    assert main(["stage-marker", "check", marker, "seed=1", "plan=bb"]) == 1
    err = capsys.readouterr().err
    assert marker in err and "plan 'aa' -> 'bb'" in err and "--redo-stale" in err
    assert (tmp_path / ".done").exists()  # a stale marker is kept unless asked


def test_redo_stale_may_come_before_the_options(tmp_path):
    # run.sh passes it there; argparse alone stops filling the option list at the first flag.
    marker = str(tmp_path / ".done")
    main(["stage-marker", "write", marker, "seed=1", "plan=aa"])
    assert main(["stage-marker", "check", marker, "--redo-stale", "seed=1", "plan=bb"]) == 3
    assert not (tmp_path / ".done").exists()
