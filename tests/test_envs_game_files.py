"""resolve_game and check_story: names and paths to checked story files, and one-line errors for bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from priorzero_pl.envs import TextGame, resolve_game
from priorzero_pl.envs.game_files import check_story
from priorzero_pl.errors import PriorZeroInputError


def test_bare_name_is_found_in_games_dir(shared_games_dir: Path) -> None:
    assert resolve_game("zork1", shared_games_dir) == (shared_games_dir / "zork1.z5").resolve()


def test_file_name_is_also_looked_up_in_games_dir(shared_games_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_game("pentari.z5", shared_games_dir).name == "pentari.z5"


def test_bare_name_uses_environment_variable(shared_games_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIORZERO_GAMES", str(shared_games_dir))
    assert resolve_game("detective").name == "detective.z5"


def test_missing_path_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "zork9.z5"
    with pytest.raises(PriorZeroInputError, match="zork9.z5 does not exist") as info:
        resolve_game(missing)
    assert "\n" not in str(info.value)


def test_text_file_renamed_z5_is_rejected(tmp_path: Path) -> None:
    fake = tmp_path / "fake.z5"
    fake.write_text("This is not a story file, just some text that is long enough for a header.\n" * 3)
    with pytest.raises(PriorZeroInputError, match=r"fake\.z5 is not a Z-machine story \(version byte 84") as info:
        TextGame(fake)
    assert "\n" not in str(info.value)


def test_truncated_story_is_rejected(tmp_path: Path, shared_games_dir: Path) -> None:
    cut = tmp_path / "cut.z5"
    cut.write_bytes((shared_games_dir / "zork1.z5").read_bytes()[:2000])
    with pytest.raises(PriorZeroInputError, match="cut.z5 is not a valid Z-machine story"):
        resolve_game(cut)


def test_unknown_name_names_the_folder(shared_games_dir: Path) -> None:
    with pytest.raises(PriorZeroInputError, match=f"game 'zork9' not found in {shared_games_dir}"):
        resolve_game("zork9", shared_games_dir)


def test_bare_name_without_games_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PRIORZERO_GAMES", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PriorZeroInputError, match="PRIORZERO_GAMES"):
        resolve_game("zork1")


def test_glulx_game_is_rejected_with_reason(tmp_path: Path) -> None:
    (tmp_path / "adv.ulx").write_bytes(b"Glul" + bytes(100))
    with pytest.raises(PriorZeroInputError, match="Glulx"):
        resolve_game("adv", tmp_path)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("max_steps", 0, "max_steps=0"), ("valid_actions_timeout", 0.0, "valid_actions_timeout=0.0"),
     ("default_actions", (), "default_actions is empty"), ("seed", -1, "seed=-1")],
)
def test_bad_text_game_options(shared_games_dir: Path, option: str, value: object, message: str) -> None:
    with pytest.raises(PriorZeroInputError, match=message):
        TextGame("zork1", games_dir=shared_games_dir, **{option: value})


# ---------------------------------------------------------------- check_story: damaged or unknown files


def _zork1_copy(tmp_path: Path, shared_games_dir: Path, edit) -> Path:
    data = bytearray((shared_games_dir / "zork1.z5").read_bytes())
    path = tmp_path / "zork1.z5"
    path.write_bytes(bytes(edit(data)))
    return path


@pytest.mark.parametrize("name", ["zork1", "detective", "pentari", "acorncourt", "omniquest", "library", "inhumane"])
def test_every_shared_game_passes_check_story(shared_games_dir: Path, name: str) -> None:
    check_story(resolve_game(name, shared_games_dir))


def test_textworld_game_passes_check_story(tw_game_path: Path) -> None:
    check_story(resolve_game(tw_game_path))


def test_story_cut_past_its_header_length_is_refused_as_unknown_to_jericho(tmp_path: Path, shared_games_dir: Path) -> None:
    # zork1.z5 is padded past the length its header gives: cutting 1 KB leaves header and checksum intact.
    cut = _zork1_copy(tmp_path, shared_games_dir, lambda data: data[:-1024])
    path = resolve_game(cut)  # the header checks pass
    with pytest.raises(PriorZeroInputError) as info:
        check_story(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and "not the zork1 that Jericho knows" in message
    assert "reward would be 0" in message and "data.allow_unverified_game: true" in message


def test_story_with_a_changed_byte_fails_the_checksum(tmp_path: Path, shared_games_dir: Path) -> None:
    def flip(data: bytearray) -> bytearray:
        data[40_000] ^= 0xFF
        return data

    with pytest.raises(PriorZeroInputError, match=r"fails the Z-machine checksum \(the header says 0xa129"):
        check_story(resolve_game(_zork1_copy(tmp_path, shared_games_dir, flip)))


def test_unverified_story_is_accepted_on_request_with_one_warning(
    tmp_path: Path, shared_games_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = resolve_game(_zork1_copy(tmp_path, shared_games_dir, lambda data: data[:-1024]))
    with caplog.at_level(logging.WARNING, logger="priorzero_pl.envs.game_files"):
        check_story(path, allow_unverified=True)
        check_story(path, allow_unverified=True)
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1
    assert "reward would be 0" in warnings[0] and "training on it anyway" in warnings[0]


def test_jericho_itself_disables_the_score_of_the_cut_story(tmp_path: Path, shared_games_dir: Path) -> None:
    """The fault check_story guards against, seen in Jericho: the cut copy loads, scores nothing."""
    jericho = pytest.importorskip("jericho")
    cut = _zork1_copy(tmp_path, shared_games_dir, lambda data: data[:-1024])
    with pytest.warns(jericho.jericho.UnsupportedGameWarning):
        env = jericho.FrotzEnv(str(cut))
    assert not env.is_fully_supported and env.get_max_score() == 0
