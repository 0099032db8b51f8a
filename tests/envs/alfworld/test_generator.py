"""Generator layouts look like ALFRED's: basin receptacles named as ALFRED names them, the agent away from them."""

from __future__ import annotations

import random

from turngym.envs.alfworld import generator as gen
from turngym.envs.alfworld.games import obj_type


def test_layouts_of_every_scene_name_basins_like_alfred_and_start_the_agent_off_receptacles():
    scenes = sorted(set(gen.split_scenes("train")) | set(gen.split_scenes("valid_unseen")))
    assert len(scenes) >= 100
    basins = 0
    for i, scene in enumerate(scenes):
        info = gen.load_scene(scene)
        for attempt in range(3):
            lay = gen.build_layout(scene, info, random.Random(f"{i}/{attempt}"))
            locs = {loc for _, loc in lay["receptacles"]}
            assert lay["agent"] not in locs, (scene, lay["agent"])
            for rid, _ in lay["receptacles"]:
                t = obj_type(rid)
                if t.endswith("Basin"):  # Sink|x|y|z|SinkBasin, Bathtub|x|y|z|BathtubBasin
                    basins += 1
                    parts = rid.split("|")
                    assert len(parts) == 5 and parts[0] in ("Sink", "Bathtub"), rid  # never SinkBasin|...
            for _, home in lay["objects"]:
                assert home in {r for r, _ in lay["receptacles"]}
    assert basins > 0


def test_a_game_whose_random_draws_all_miss_still_gets_a_scene_that_supports_its_type(monkeypatch):
    """Train game 1336 (seed 0) is a heat task whose 20 random scene draws all land on scenes without a microwave;
    the generator then tries every scene in a drawn order instead of stopping the whole run."""
    draws = []
    orig = gen._scene_draws

    def recording(scenes, rng):
        for scene in orig(scenes, rng):
            draws.append(scene)
            yield scene

    monkeypatch.setattr(gen, "_scene_draws", recording)
    rec = gen.candidate(0, "train", 1336, 0)
    monkeypatch.undo()
    assert rec["task_type"] == "pick_heat_then_place_in_recep"
    assert len(draws) > 20  # the 20 draws missed: the fallback found the scene
    assert rec["scene"] == draws[-1] and rec["scene"] in gen.split_scenes("train")
    # a pure function of its arguments, as every game is
    assert gen.candidate(0, "train", 1336, 0) == rec


def test_sample_record_is_none_only_when_no_scene_supports_the_type():
    kitchens = [s for s in gen.split_scenes("train") if gen.room_type(s) == "Kitchen"][:3]
    assert kitchens
    assert gen.sample_record("t", "look_at_obj_in_light", kitchens, random.Random(0), {}) is None
